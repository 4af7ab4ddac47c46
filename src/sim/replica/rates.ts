import type { DeviceProfile } from "../profile.js";
import type { SimModel } from "../types.js";

/** What one side of a placement reaches with its kernel threads: the rates the step model uses. */
export interface SideRates {
  readonly threads: number;
  /** Batched GEMM asymptote (FLOP/s) and the batch at half of it. */
  readonly peakFlops: number;
  readonly halfBatch: number;
  /** The measured GEMM pass rates (FLOP/s) at increasing batches, where the profile has them. */
  readonly gemmCurve?: readonly { readonly batch: number; readonly flops: number }[];
  /** GEMM rate of a prompt chunk (hundreds of tokens), FLOP/s; prefill attention runs at it too. */
  readonly prefillFlops: number;
  /** Tokens of the chunk prefillFlops was measured on, where known (SideCost.prefill splits it). */
  readonly prefillChunkTokens?: number;
  /** KV read rate of a chunk's queries over the context before it, bytes/s, where measured. */
  readonly prefillContextBandwidth?: number;
  /** Batch-1 weight streaming, bytes/s. */
  readonly weightBandwidth: number;
  /** Decode attention KV read rate, bytes/s. */
  readonly attentionBandwidth: number;
  /** Decode attention's cost per sequence and layer before its bytes, s (0 where not measured). */
  readonly attentionSeqS: number;
}

/**
 * The rates of a side running `threads` kernel threads, from one device profile: the whole-machine
 * rates at the profile's thread count, the split's at the model side's (GEMMs) and the attention
 * worker's (attention) thread counts, and in between proportional to threads (each thread streams
 * and computes on its own core). Every placement's prediction draws on this one function, so they
 * all come from the same measurement. Each rate is divided by the host stall of that thread count
 * (stallFactor): what a run of many steps reaches, not a free core's median.
 */
export function sideRates(p: DeviceProfile, threads: number): SideRates {
  const whole = p.threads ?? threads;
  const s = p.split;
  const gemm = s && s.modelThreads === threads ? s.gemm : p.gemm;
  const gemmScale = s && s.modelThreads === threads ? 1 : threads / whole;
  const weight =
    s && s.modelThreads === threads ? s.weightBandwidth : p.weightBandwidth * Math.min(1, threads / whole);
  const att =
    s && s.attentionThreads === threads
      ? s.attentionBandwidth
      : s && threads < whole
        ? s.attentionBandwidth * (threads / s.attentionThreads)
        : p.attentionBandwidth * (threads / whole);
  const seqS =
    s && s.attentionThreads === threads
      ? (s.attentionSeqS ?? 0)
      : s && threads < whole
        ? ((s.attentionSeqS ?? 0) * s.attentionThreads) / threads
        : ((p.attentionSeqS ?? 0) * whole) / threads;
  // The prompt-chunk measurement at this thread count where there is one, else scaled by threads.
  const chunk = p.prefillWhole?.threads === threads ? p.prefillWhole : p.prefill;
  const prefill = chunk ? chunk.flops * (threads / chunk.threads) : gemm.peakFlops * gemmScale;
  const stall = stallFactor(p, threads);
  return {
    threads,
    peakFlops: (gemm.peakFlops * gemmScale) / stall,
    halfBatch: gemm.halfBatch,
    ...(gemm.points
      ? { gemmCurve: gemm.points.map((q) => ({ batch: q.batch, flops: (q.flops * gemmScale) / stall })) }
      : {}),
    prefillFlops: prefill / stall,
    ...(chunk?.chunkTokens ? { prefillChunkTokens: chunk.chunkTokens } : {}),
    ...(chunk?.contextBandwidth
      ? { prefillContextBandwidth: (chunk.contextBandwidth * (threads / chunk.threads)) / stall }
      : {}),
    weightBandwidth: weight / stall,
    attentionBandwidth: att / stall,
    attentionSeqS: seqS * stall,
  };
}

/**
 * The profile's host stall for a side running `threads` kernel threads: the factor measured with
 * that many threads, else with the most threads below it, else 1 (none measured).
 */
export function stallFactor(p: DeviceProfile, threads: number): number {
  let best: { threads: number; factor: number } | undefined;
  for (const s of p.stall ?? []) if (s.threads <= threads && (!best || s.threads > best.threads)) best = s;
  return best?.factor ?? 1;
}

/**
 * The profile as it applies to `model`: where the profile measured rates on the model's own widths
 * (modelShapes), its prefill rate is that one, and sides of the thread count measured there get its
 * GEMM fit and weight rate; else the profile as it is.
 */
export function profileForModel(p: DeviceProfile, model: SimModel): DeviceProfile {
  const own = p.modelShapes?.find((s) => s.hidden === model.hidden && s.intermediate === model.intermediate);
  if (!own) return p;
  // prefillWhole was measured on the profile's own model: a model of other widths takes its entry.
  const { prefillWhole: _ownModelOnly, ...rest } = p;
  const q: { -readonly [K in keyof DeviceProfile]: DeviceProfile[K] } = {
    ...rest,
    prefill: {
      threads: own.threads,
      flops: own.prefillFlops,
      ...(own.prefillChunkTokens ? { chunkTokens: own.prefillChunkTokens } : {}),
      // The context's read rate is the machine's (its KV in cache), whatever the model's widths.
      ...(p.prefill?.contextBandwidth && p.prefill.threads === own.threads
        ? { contextBandwidth: p.prefill.contextBandwidth }
        : {}),
    },
  };
  if (own.gemm && own.weightBandwidth !== undefined) {
    if (p.split?.modelThreads === own.threads)
      q.split = { ...p.split, gemm: own.gemm, weightBandwidth: own.weightBandwidth };
    if ((p.threads ?? own.threads) === own.threads) {
      q.gemm = own.gemm;
      q.weightBandwidth = own.weightBandwidth;
    }
  }
  return q;
}
