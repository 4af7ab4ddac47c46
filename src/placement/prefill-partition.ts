// The compute partition of a prefill instance (Adrenaline §3, technique 2): prefill gets the
// smallest share of the cores that still meets its time-to-first-token target; the attention
// executor gets the rest. On a CPU the share is a thread count, chosen from measured prefill speed.
import { resolveSamplingParams } from "../engine/sampling-params.js";
import type { KernelBackend } from "../kernels/backend.js";
import type { LoadedModel } from "../model/types.js";
import { buildColocatedEngine } from "./build.js";

/** Measured seconds for one prefill chunk of `chunkTokens` tokens, per thread count. */
export interface ChunkTiming {
  readonly threads: number;
  readonly seconds: number;
}

export interface PartitionChoice {
  readonly prefillThreads: number;
  readonly attentionThreads: number;
  /** Predicted TTFT (s) of the longest prompt with the chosen prefill threads. */
  readonly predictedTtftS: number;
  /** Whether that prediction meets the target (false: even the largest share does not). */
  readonly meetsTarget: boolean;
  readonly timings: readonly ChunkTiming[];
}

/**
 * The smallest prefill thread count whose predicted TTFT for a `longestPrompt`-token prompt
 * (ceil(longestPrompt / chunkTokens) chunks, one per step) is within `targetS`; if none is, the
 * fastest one. The attention executor keeps the other cores (at least one).
 */
export function choosePartition(
  timings: readonly ChunkTiming[],
  cores: number,
  longestPrompt: number,
  chunkTokens: number,
  targetS: number,
): PartitionChoice {
  if (timings.length === 0) throw new Error("choosePartition: no timings");
  const chunks = Math.ceil(longestPrompt / chunkTokens);
  const sorted = [...timings].sort((a, b) => a.threads - b.threads);
  const meeting = sorted.find((t) => t.seconds * chunks <= targetS);
  const pick = meeting ?? sorted.reduce((best, t) => (t.seconds < best.seconds ? t : best));
  return {
    prefillThreads: pick.threads,
    attentionThreads: Math.max(1, cores - pick.threads),
    predictedTtftS: pick.seconds * chunks,
    meetsTarget: meeting !== undefined,
    timings: sorted,
  };
}

/**
 * Times one prefill chunk of `chunkTokens` tokens through the model with 1 … maxThreads kernel
 * threads (an in-process engine, a warm-up chunk first; the median of `reps`), restoring the
 * backend's thread count afterwards. The same prompt runs every time, so the engine keeps no
 * prefix cache: with one, every run after the first computed only the prompt's last block.
 */
export async function measurePrefillChunk(
  model: LoadedModel,
  backend: KernelBackend,
  chunkTokens: number,
  maxThreads: number,
  restoreThreads: number,
  reps = 3,
): Promise<ChunkTiming[]> {
  const n = Math.max(1, Math.min(chunkTokens, model.config.maxPositionEmbeddings - 1));
  const core = buildColocatedEngine(model, backend, {
    maxRunning: 1,
    maxTokensPerStep: n,
    pipelineDepth: 1,
    prefixCaching: false,
    speculativeTokens: 0,
  });
  const vocab = model.config.vocabSize;
  const prompt = Array.from({ length: n }, (_, i) => (i * 7919 + 13) % vocab);
  const params = resolveSamplingParams({ temperature: 0, maxTokens: 1, ignoreEos: true });
  let id = 0;
  const once = async (): Promise<number> => {
    core.add({ id: `partition-${id++}`, promptTokenIds: prompt, params });
    const t0 = performance.now();
    while (core.hasWork)
      for (const ev of await core.runStep())
        if (ev.cachedTokens)
          throw new Error("prefill probe: the chunk was taken from a prefix cache, not computed");
    return (performance.now() - t0) / 1000;
  };
  const out: ChunkTiming[] = [];
  try {
    for (let t = 1; t <= maxThreads; t++) {
      backend.setThreads(t);
      await once();
      const times: number[] = [];
      for (let r = 0; r < reps; r++) times.push(await once());
      times.sort((a, b) => a - b);
      out.push({ threads: t, seconds: times[Math.floor(times.length / 2)]! });
    }
  } finally {
    backend.setThreads(restoreThreads);
  }
  return out;
}
