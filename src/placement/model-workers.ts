import { sliceModel } from "../graph/converter.js";
import { buildLlamaGraph } from "../graph/llama-graph.js";
import { modelFingerprint } from "../model/fingerprint.js";
import type { LoadedModel } from "../model/types.js";
import { ModelWorkerExecutor } from "../runtime/model-worker-executor.js";
import { describeRotation } from "../util/rotation.js";
import { connectAttentionWorkers } from "./attention-workers.js";
import type { Assembled } from "./build.js";
import { spawnModelWorker } from "./model-worker-procs.js";
import { connectModelWorker, reconnectModelWorker } from "./model-worker-remote.js";
import type { EngineOptions } from "./options.js";
import type { EngineSizes } from "./sizes.js";
import { attentionToken, modelWorkerCount } from "./validate.js";

/** The spin of the front end's and model workers' waits when --spin-us is not given (µs). */
const DEFAULT_SPIN_US = 200;
const DEFAULT_TIMEOUT_MS = 5_000;
/** How long recovery tries to reach a lost model worker at an address again (its supervisor restarting it). */
const RECONNECT_MS = 15_000;

/**
 * Lamina's (a, b) topology: `a` model worker processes run the slices, `b` attention workers hold
 * the KV cache; this process keeps scheduling, sampling and the API. The attention workers'
 * segments are shared with the model workers, which post each layer there themselves.
 */
export async function buildModelWorkerPlacement(
  model: LoadedModel,
  sizes: EngineSizes,
  options: EngineOptions,
  depth: number,
  log: (line: string) => void,
): Promise<Assembled> {
  const replicas = modelWorkerCount(options)!;
  const addrs = options.modelWorkerAddrs ?? [];
  const fingerprint = modelFingerprint(model.config);
  const secret = attentionToken(options) ?? "";
  // First bring-up of each replica connects once (a wrong address is reported at once); later
  // ones (recovery) give the worker's supervisor time to restart it.
  const started = new Set<number>();
  const spawn = (r: number) => {
    if (addrs.length === 0)
      return spawnModelWorker(r, {
        model: options.model,
        threads: options.modelWorkerThreads ?? 1,
        weightPacking: options.weightPacking !== false,
        fingerprint,
        log,
      });
    const connect = { secret, fingerprint, log };
    const first = !started.has(r);
    started.add(r);
    return first
      ? connectModelWorker(addrs[r]!, connect)
      : reconnectModelWorker(addrs[r]!, connect, RECONNECT_MS);
  };
  const attention = await connectAttentionWorkers(sizes, options, depth, log, true);
  const sliced = sliceModel(buildLlamaGraph(model.config));
  log(
    `${replicas} model worker${replicas === 1 ? "" : "s"}, ${depth} micro-batches in flight; slice k of micro-batch j runs on model worker (j + k) mod ${replicas}:`,
  );
  for (const line of describeRotation(depth, sliced.slices.length, replicas)) log(`  ${line}`);
  try {
    const executor = await ModelWorkerExecutor.start({
      attention,
      sliced,
      maxTokens: sizes.maxTokensPerStep,
      // The plane's sequence slots double as its logit rows: a speculative step has more rows.
      maxSeqs: sizes.maxLogitRows,
      maxContext: sizes.maxContext,
      microBatches: depth,
      replicas,
      spawn,
      spinUs: options.spinMicros ?? DEFAULT_SPIN_US,
      plane: options.modelPlane ?? "shm",
      timeoutMs: options.attentionTimeoutMs ?? DEFAULT_TIMEOUT_MS,
      log,
    });
    return { executor, attention };
  } catch (e) {
    await attention.close();
    throw e;
  }
}
