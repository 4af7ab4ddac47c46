import { sliceModel } from "../graph/converter.js";
import { buildLlamaGraph } from "../graph/llama-graph.js";
import type { LoadedModel } from "../model/types.js";
import { ModelWorkerExecutor } from "../runtime/model-worker-executor.js";
import { describeRotation } from "../util/rotation.js";
import { connectAttentionWorkers } from "./attention-workers.js";
import type { Assembled } from "./build.js";
import { spawnModelWorker } from "./model-worker-procs.js";
import type { EngineOptions } from "./options.js";
import type { EngineSizes } from "./sizes.js";

/** The spin of the front end's and model workers' waits when --spin-us is not given (µs). */
const DEFAULT_SPIN_US = 200;
const DEFAULT_TIMEOUT_MS = 5_000;

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
  const replicas = options.modelWorkers!;
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
      maxSeqs: sizes.maxRunning,
      maxContext: sizes.maxContext,
      microBatches: depth,
      replicas,
      spawn: (r) =>
        spawnModelWorker(r, { model: options.model, threads: options.modelWorkerThreads ?? 1, log }),
      spinUs: options.spinMicros ?? DEFAULT_SPIN_US,
      timeoutMs: options.attentionTimeoutMs ?? DEFAULT_TIMEOUT_MS,
      log,
    });
    return { executor, attention };
  } catch (e) {
    await attention.close();
    throw e;
  }
}
