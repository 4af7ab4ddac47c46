import { availableParallelism } from "node:os";
import type { Command } from "commander";
import type { EngineClient } from "../engine/api.js";
import { createEngine, type EngineOptions } from "../placement/create-engine.js";
import { validatePlacement } from "../placement/validate.js";
import { createServer, type LaminaServer } from "../server/app.js";
import { addEngineFlags, type EngineFlagValues, engineOptionsFromFlags } from "./engine-flags.js";
import { intArg } from "./parse.js";

interface ServeFlags extends EngineFlagValues {
  servedModelName?: string;
  maxWaiting?: number;
  host: string;
  port: number;
  apiKey?: string;
  shutdownGrace: number;
}

/**
 * Adds `lamina serve`: the engine behind the OpenAI-compatible HTTP server. Engine and
 * placement flags are the ones every engine command shares; the rest are the server's.
 */
export function registerServeCommand(program: Command): Command {
  const command = program
    .command("serve")
    .description("serve a model over an OpenAI-compatible HTTP API (no --model: the built-in demo model)");
  addEngineFlags(command);
  return command
    .option("--served-model-name <name>", "model id reported by the API")
    .option("--max-waiting <n>", "waiting-queue bound; beyond it requests get 429", intArg(0))
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--port <port>", "port to listen on (0 = any free port)", intArg(0, 65535), 8000)
    .option("--api-key <key>", "require 'Authorization: Bearer KEY' on /v1 (default: $LAMINA_API_KEY)")
    .option(
      "--shutdown-grace <seconds>",
      "on SIGINT/SIGTERM, how long in-flight requests may finish before they are cancelled",
      intArg(1),
      30,
    )
    .action(async (flags: ServeFlags) => {
      validatePlacement(engineOptions(flags)); // bad placement flags fail before anything listens
      await runServer(flags);
    });
}

/**
 * The default placement: attention workers only where the machine has cores for them without
 * taking the model side's. The model side uses every core unless `--threads` caps it; cores left
 * over host one local attention worker. Elsewhere attention runs in-process (on this project's
 * measurements a worker that takes one of the model side's cores makes decoding slower), and the
 * start-up log names the flag that splits it.
 */
export function defaultAttentionWorkers(
  f: EngineFlagValues,
  cores = availableParallelism(),
): number | undefined {
  if (f.attentionWorkers != null || f.attentionWorkerAddrs) return f.attentionWorkers;
  if ((f.mode ?? "colocated") !== "colocated") return undefined;
  return f.threads !== undefined && cores - f.threads >= 1 ? 1 : 0;
}

function engineOptions(f: ServeFlags): EngineOptions {
  const o: Record<string, unknown> = {
    ...engineOptionsFromFlags(f),
    attentionWorkers: defaultAttentionWorkers(f),
    servedModelName: f.servedModelName,
    maxWaiting: f.maxWaiting,
  };
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o as EngineOptions;
}

async function runServer(flags: ServeFlags): Promise<void> {
  const log = (line: string) => process.stderr.write(`[lamina] ${line}\n`);
  const apiKey = flags.apiKey ?? process.env.LAMINA_API_KEY ?? null;
  const enginePromise = createEngine(engineOptions(flags), log);
  // Listen at once: /health answers 503 while the model loads.
  const app = createServer(enginePromise as Promise<EngineClient>, { apiKey, logger: false });
  await app.listen({ host: flags.host, port: flags.port });
  const address = app.server.address();
  const boundPort = typeof address === "object" && address ? address.port : flags.port;
  const hostForUrl = flags.host.includes(":") ? `[${flags.host}]` : flags.host;
  const url = `http://${hostForUrl}:${boundPort}`;
  log(`listening on ${url} (loading the model; /health is 503 until it is ready)`);
  installShutdown(app, enginePromise, flags.shutdownGrace, log);

  let engine: Awaited<typeof enginePromise>;
  try {
    engine = await enginePromise;
  } catch (err) {
    log(`engine failed to start: ${(err as Error).message}`);
    await app.close();
    process.exitCode = 1;
    return;
  }
  log(`model: ${engine.model.id} — ${engine.model.label} (context ${engine.model.contextLength} tokens)`);
  log(`kernels: ${engine.backendDescription}`);
  log(`attention: ${engine.attentionDescription}${placementHint(flags)}`);
  if (apiKey) log("API key required on /v1 routes");
  log(`ready: ${url}/v1 (OpenAI API), ${url}/health, ${url}/metrics`);
}

/** How to choose the other placement, when the default was taken. */
function placementHint(f: ServeFlags): string {
  if (f.attentionWorkers != null || f.attentionWorkerAddrs || (f.mode ?? "colocated") !== "colocated")
    return "";
  return defaultAttentionWorkers(f)
    ? " (the default where --threads leaves cores free; --attention-workers 0 keeps attention in-process)"
    : ` (the default on ${availableParallelism()} cores, all for the model side; --attention-workers N moves attention to N local workers)`;
}

/**
 * SIGINT/SIGTERM: stop accepting, let in-flight requests finish for the grace period, then
 * cancel what is left, free the engine and exit 0. A second signal cancels at once.
 */
function installShutdown(
  app: LaminaServer,
  enginePromise: Promise<EngineClient>,
  graceSeconds: number,
  log: (line: string) => void,
): void {
  let stopping = false;
  const stop = async (signal: string) => {
    const slot = app.lamina.slot;
    if (stopping) {
      log(`${signal} again: cancelling in-flight requests`);
      await slot.peek()?.shutdown({ force: true });
      return;
    }
    stopping = true;
    log(`${signal}: draining ${slot.inFlight} in-flight request(s) (up to ${graceSeconds}s)`);
    // New requests on open connections get 503; no new connections are accepted.
    slot.draining = true;
    app.server.close();
    app.server.closeIdleConnections();
    const grace = new Promise<boolean>((resolve) =>
      setTimeout(() => resolve(false), graceSeconds * 1000).unref(),
    );
    const drained = await Promise.race([slot.idle().then(() => true), grace]);
    const engine = await enginePromise.catch(() => null);
    if (!drained) log("grace period over: cancelling in-flight requests");
    // Forced shutdown ends every stream with finish_reason "abort", so the handlers return.
    await engine?.shutdown({ force: !drained });
    await slot.idle();
    app.server.closeAllConnections();
    await app.close();
    log("stopped");
    process.exit(0);
  };
  process.on("SIGINT", (s) => void stop(s));
  process.on("SIGTERM", (s) => void stop(s));
}
