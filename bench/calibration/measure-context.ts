import { median } from "../../src/bench/stats.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import type { KernelBackend } from "../../src/kernels/backend.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine } from "../../src/placement/build.js";

/**
 * The rate of a prompt chunk's attention over the context before it, as bytes of K and V over all
 * layers counted once per query token and earlier key (the prompt tiles read each key once for a
 * tile of queries, so this is an effective rate): a chunk after a long context (a prompt after a
 * cached prefix, the later chunks of a long prompt) costs this on top of its GEMMs, in proportion
 * to its queries times its context. Measured as the time a `chunk`-token prompt
 * tail takes after `context` cached tokens less the time the same number of tokens takes from an
 * empty context, over the extra reads; the median of `reps` (each on an opening of its own, made
 * cached by a first request).
 */
export async function measureContextReads(
  model: LoadedModel,
  backend: KernelBackend,
  threads: number,
  restoreThreads: number,
  o: { context: number; chunk: number; reps: number; kvBytesPerToken: number },
): Promise<number> {
  const blockSize = 16;
  const core = buildColocatedEngine(model, backend, {
    maxRunning: 1,
    maxTokensPerStep: o.context + o.chunk + 1,
    blockSize,
    pipelineDepth: 1,
    speculativeTokens: 0,
  });
  const vocab = model.config.vocabSize;
  const params = resolveSamplingParams({ temperature: 0, maxTokens: 1, ignoreEos: true });
  let id = 0;
  const seconds = async (tokens: number[]): Promise<{ s: number; cached: number }> => {
    core.add({ id: `context-${id++}`, promptTokenIds: tokens, params });
    let cached = 0;
    const t0 = performance.now();
    while (core.hasWork)
      for (const ev of await core.runStep()) if (ev.cachedTokens !== undefined) cached = ev.cachedTokens;
    return { s: (performance.now() - t0) / 1000, cached };
  };
  const ids = (n: number, salt: number) =>
    Array.from({ length: n }, (_, i) => (i * 7919 + salt * 104729 + 1) % vocab);
  const rates: number[] = [];
  backend.setThreads(threads);
  try {
    for (let r = 0; r <= o.reps; r++) {
      const opening = ids(o.context, 2 * r);
      await seconds([...opening, 1]); // cached from here on
      const after = await seconds([...opening, ...ids(o.chunk, 2 * r + 1)]);
      if (after.cached !== o.context)
        throw new Error(`context probe: ${after.cached} of ${o.context} context tokens found cached`);
      const alone = await seconds(ids(o.chunk, 2 * r + 1));
      // Token reads: each of the chunk's queries reads the context, on top of its own causal part.
      const reads = o.chunk * o.context * o.kvBytesPerToken;
      if (r > 0 && after.s > alone.s) rates.push(reads / (after.s - alone.s)); // rep 0 warms up
    }
  } finally {
    backend.setThreads(restoreThreads);
  }
  if (rates.length === 0)
    throw new Error("context probe: a chunk after its context never took longer than alone");
  return median(rates);
}
