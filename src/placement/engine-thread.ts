import { type MessagePort, parentPort } from "node:worker_threads";
import { kvCapacityTokens } from "../attention/service.js";
import type { TokenEvent } from "../engine/api.js";
import type { EngineCore } from "../engine/engine-core.js";
import { EngineError } from "../engine/errors.js";
import type { KernelBackend } from "../kernels/backend.js";
import { describeKvDtype } from "../kernels/index.js";
import { describeOutputReserve } from "../util/output-reserve.js";
import { checkVersion, type FromWorker, type ToWorker, type WireError } from "./engine-thread-protocol.js";
import { loadEngine } from "./load-engine.js";
import type { EngineOptions } from "./options.js";
import { type OutputCount, outputCount } from "./output-count.js";
import { defaultKvDtype, SPECULATION_MIN_WEIGHT_BYTES } from "./sizes.js";
import { validatePlacement } from "./validate.js";

/**
 * The engine's thread: loads the model, then loops schedule → execute → sample while there is
 * work, and sleeps on the message port when there is none. Runs off the main thread so the HTTP
 * event loop never waits for a forward pass.
 */
if (!parentPort) throw new Error("engine-worker must run in a worker thread");
const port: MessagePort = parentPort;

let core: EngineCore | null = null;
let shuttingDown = false;
let wake: (() => void) | null = null;
/** How often an engine without attention capacity looks for it again while idle. */
const RETRY_MS = 1000;
/** Steps the engine may still start before it holds (null: not holding). */
let stepsLeft: number | null = null;
const queued: ToWorker[] = [];
/** Batches with a first token posted to the HTTP thread (with a native data plane; output-count.ts). */
let output: OutputCount | null = null;

const post = (m: FromWorker): void => port.postMessage(m);

function toWire(e: unknown): WireError {
  if (e instanceof EngineError) {
    return {
      ...(e as unknown as Record<string, unknown>),
      name: e.name,
      message: e.message,
      code: e.code,
    } as WireError;
  }
  return { name: "Error", message: e instanceof Error ? e.message : String(e), code: "internal" };
}

function handle(m: ToWorker): void {
  if (!core) {
    queued.push(m);
    return;
  }
  switch (m.type) {
    case "generate":
      try {
        if (shuttingDown) throw new EngineError("the engine is shutting down", "not_ready");
        core.add(m.request);
      } catch (e) {
        post({ v: 1, type: "rejected", id: m.request.id, error: toWire(e) });
      }
      break;
    case "abort":
      core.abort(m.id);
      break;
    case "shutdown":
      shuttingDown = true;
      stepsLeft = null; // a held engine would never drain
      if (m.force) for (const id of core.requestIds()) core.abort(id);
      break;
    case "hold":
      stepsLeft = Math.max(0, Math.floor(m.afterSteps));
      break;
    case "release":
      stepsLeft = null;
      break;
    case "init":
      break;
  }
}

port.on("message", (raw: ToWorker) => {
  try {
    checkVersion(raw);
  } catch (e) {
    post({ v: 1, type: "log", message: (e as Error).message });
    return;
  }
  if (raw.type === "init") {
    void init(raw.options);
    return;
  }
  handle(raw);
  // While held, the caller still sees what its messages changed (waiting requests, aborts).
  if (core && stepsLeft === 0) post({ v: 1, type: "events", events: [], stats: core.stats() });
  wake?.();
  wake = null;
});

/**
 * The KV dtype for the start-up log; for int8 in this process's own cache (the colocated placement),
 * also the path its kernels read it through (attention workers and prefill instances log their own).
 */
function kvDtypeLine(
  setup: { model: Parameters<typeof defaultKvDtype>[0]; backend: KernelBackend },
  options: EngineOptions,
): string {
  const dtype = options.kvDtype ?? defaultKvDtype(setup.model);
  return validatePlacement(options) === "colocated" ? describeKvDtype(dtype, setup.backend) : dtype;
}

async function init(options: Extract<ToWorker, { type: "init" }>["options"]): Promise<void> {
  try {
    const setup = await loadEngine(options, { log: (message) => post({ v: 1, type: "log", message }) });
    core = setup.core;
    // Only waits on a native data plane read the count: elsewhere the HTTP thread need not load the addon.
    if ((setup.core.executor.drive ?? setup.core.attention.drive) != null) output = outputCount();
    // Readiness changes mid-step (a recovery starts or gives up): report it at once.
    core.onReadinessChange = () => post({ v: 1, type: "events", events: [], stats: setup.core.stats() });
    post({
      v: 1,
      type: "ready",
      model: setup.info,
      source: setup.model.source,
      backend: setup.backend.describe(),
      // What serve's start-up log prints: the placement and how many tokens its KV caches hold.
      attention: `${setup.core.attention.description}, KV capacity ${kvCapacityTokens(setup.core.attention.usage())} tokens of ${kvDtypeLine(setup, options)} in blocks of ${setup.core.attention.usage()[0]?.blockSize}, prefix caching ${prefixCachingState(setup.core, options)}, speculative decoding ${speculationState(setup.core, options)}, output reserve ${describeOutputReserve(setup.core.scheduler.reserve.options)}`,
    });
    for (const m of queued.splice(0)) handle(m);
    await loop(setup.core);
  } catch (e) {
    post({ v: 1, type: "init_error", message: e instanceof Error ? e.message : String(e) });
  }
}

/**
 * One step; a step that throws fails every request with the reason instead of ending the loop,
 * so no stream (and no shutdown waiting for them) hangs on an engine that stopped stepping.
 */
async function step(c: EngineCore): Promise<readonly TokenEvent[]> {
  try {
    return await c.runStep();
  } catch (e) {
    const reason = `engine step failed: ${e instanceof Error ? e.message : String(e)}`;
    post({ v: 1, type: "log", message: reason });
    return c.failAll(reason);
  }
}

async function loop(c: EngineCore): Promise<void> {
  for (;;) {
    if (!(c.hasWork || c.wantsRetry()) || stepsLeft === 0) {
      if (shuttingDown && !c.hasWork) break;
      // Without attention capacity, look again after a while even if no message comes.
      const retry = c.readiness.ready ? null : setTimeout(() => wake?.(), RETRY_MS);
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      if (retry) clearTimeout(retry);
      continue;
    }
    if (stepsLeft !== null) stepsLeft--;
    const events = await step(c);
    const counted = output && firstTokens(events) ? output.posted() : undefined;
    post({ v: 1, type: "events", events, stats: c.stats(), output: counted });
    // Let queued messages (new requests, aborts) in between steps.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  // Model workers first (they post into the attention workers' segments), then attention.
  await c.executor.close?.();
  await c.attention.close();
  post({ v: 1, type: "events", events: [], stats: c.stats() });
  post({ v: 1, type: "closed" });
  port.close();
}

/** Whether a batch carries a request's first token (its first event has queueTime). */
function firstTokens(events: readonly TokenEvent[]): boolean {
  for (const e of events) if (e.queueTime !== undefined) return true;
  return false;
}

/** What the start-up log says of speculative decoding: its settings, off by flag, or not offered. */
function speculationState(core: EngineCore, options: EngineOptions): string {
  const s = core.scheduler.speculation;
  if (s)
    return `${s.options.tokens} tokens by prompt lookup while at most ${s.options.maxRunning} sequences run`;
  if (options.speculativeTokens === 0) return "off";
  if (!core.attention.rewritesKv) return "off (a draft's KV cannot be taken back in pd / adrenaline)";
  return `off (a model under ${SPECULATION_MIN_WEIGHT_BYTES / 2 ** 20} MiB of weights spends a step on fixed costs a draft adds to; --speculative-tokens N turns it on)`;
}

/** What the start-up log says of prefix caching: on, off by flag, or not offered by the placement. */
function prefixCachingState(core: EngineCore, options: EngineOptions): string {
  if (core.scheduler.prefix) return "on";
  if (options.prefixCaching === false) return "off";
  return "off (pd / adrenaline's prefill instances do not share KV blocks)";
}
