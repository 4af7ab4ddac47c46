import type { DeviceProfile } from "../profile.js";

/** What one side of a placement reaches with its kernel threads: the rates the step model uses. */
export interface SideRates {
  readonly threads: number;
  /** Batched GEMM asymptote (FLOP/s) and the batch at half of it. */
  readonly peakFlops: number;
  readonly halfBatch: number;
  /** GEMM rate of a prompt chunk (hundreds of tokens), FLOP/s; prefill attention runs at it too. */
  readonly prefillFlops: number;
  /** Batch-1 weight streaming, bytes/s. */
  readonly weightBandwidth: number;
  /** Decode attention KV read rate, bytes/s. */
  readonly attentionBandwidth: number;
}

/**
 * The rates of a side running `threads` kernel threads, from one device profile: the whole-machine
 * rates at the profile's thread count, the split's at the model side's (GEMMs) and the attention
 * worker's (attention) thread counts, and in between proportional to threads (each thread streams
 * and computes on its own core). Every placement's prediction draws on this one function, so they
 * all come from the same measurement.
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
  const prefill = p.prefill
    ? threads === p.prefill.threads
      ? p.prefill.flops
      : p.prefill.flops * (threads / p.prefill.threads)
    : gemm.peakFlops * gemmScale;
  return {
    threads,
    peakFlops: gemm.peakFlops * gemmScale,
    halfBatch: gemm.halfBatch,
    prefillFlops: prefill,
    weightBandwidth: weight,
    attentionBandwidth: att,
  };
}
