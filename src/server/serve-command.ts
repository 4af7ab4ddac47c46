import { type Command, Option } from "commander";
import type { EngineClient } from "../engine/api.js";
import { createEngine, type EngineOptions } from "../engine/create.js";
import { createServer, type LaminaServer } from "./app.js";
import { byteSize, hostPortList, nonNegativeInt, port, positiveInt } from "./cli-options.js";

interface ServeFlags {
  model?: string;
  tokenizer?: string;
  servedModelName?: string;
  attentionWorkers?: number;
  attentionWorkerAddrs?: string[];
  attentionToken?: string;
  pipelineDepth?: number;
  partition?: "head" | "request";
  host: string;
  port: number;
  apiKey?: string;
  maxRunning?: number;
  maxWaiting?: number;
  kvMemory?: number;
  blockSize?: number;
  threads?: number;
  backend?: "auto" | "native" | "reference";
  shutdownGrace: number;
}

/** Adds `lamina serve`: the engine behind the OpenAI-compatible HTTP server. */
export function registerServeCommand(program: Command): Command {
  return program
    .command("serve")
    .description("serve a model over an OpenAI-compatible HTTP API (no --model: the built-in demo model)")
    .option("--model <path|hub-id>", "Hugging Face directory, llama2.c .bin, or ORG/NAME on the Hub")
    .option("--tokenizer <path>", "tokenizer file for llama2.c checkpoints, if not beside the .bin")
    .option("--served-model-name <name>", "model id reported by the API")
    .option(
      "--attention-workers <n>",
      "locally spawned attention workers (0 = in-process)",
      nonNegativeInt("--attention-workers"),
    )
    .option(
      "--attention-worker-addrs <list>",
      "running attention workers, host:port,...",
      hostPortList("--attention-worker-addrs"),
    )
    .option("--attention-token <secret>", "shared secret for remote attention workers")
    .option(
      "--pipeline-depth <n>",
      "micro-batches in flight (staggered pipelining)",
      positiveInt("--pipeline-depth"),
    )
    .addOption(
      new Option("--partition <how>", "how KV is split across attention workers").choices([
        "head",
        "request",
      ]),
    )
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--port <port>", "port to listen on (0 = any free port)", port, 8000)
    .option("--api-key <key>", "require 'Authorization: Bearer KEY' (default: $LAMINA_API_KEY)")
    .option("--max-running <n>", "largest running batch", positiveInt("--max-running"))
    .option(
      "--max-waiting <n>",
      "waiting-queue bound; beyond it requests get 429",
      nonNegativeInt("--max-waiting"),
    )
    .option("--kv-memory <size>", "KV cache budget, e.g. 512MiB or 2GiB", byteSize("--kv-memory"))
    .option("--block-size <tokens>", "KV block size in tokens", positiveInt("--block-size"))
    .option("--threads <n>", "kernel threads", positiveInt("--threads"))
    .addOption(new Option("--backend <name>", "kernel backend").choices(["auto", "native", "reference"]))
    .option(
      "--shutdown-grace <seconds>",
      "on SIGINT/SIGTERM, how long in-flight requests may finish",
      positiveInt("--shutdown-grace"),
      30,
    )
    .action(async (flags: ServeFlags) => {
      if (flags.attentionWorkers != null && flags.attentionWorkerAddrs) {
        throw new Error(
          "--attention-workers and --attention-worker-addrs are exclusive: spawn workers or connect to running ones",
        );
      }
      await serve(flags);
    });
}

function engineOptions(f: ServeFlags): EngineOptions {
  const o: Record<string, unknown> = {
    model: f.model,
    tokenizerPath: f.tokenizer,
    servedModelName: f.servedModelName,
    attentionWorkers: f.attentionWorkers,
    attentionWorkerAddrs: f.attentionWorkerAddrs,
    attentionToken: f.attentionToken,
    pipelineDepth: f.pipelineDepth,
    partition: f.partition,
    maxRunning: f.maxRunning,
    maxWaiting: f.maxWaiting,
    kvMemory: f.kvMemory,
    blockSize: f.blockSize,
    threads: f.threads,
    backend: f.backend,
  };
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o as EngineOptions;
}

async function serve(flags: ServeFlags): Promise<void> {
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
  log(`attention: ${engine.attentionDescription}`);
  if (apiKey) log("API key required on /v1 routes");
  log(`ready: ${url}/v1 (OpenAI API), ${url}/health, ${url}/metrics`);
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
