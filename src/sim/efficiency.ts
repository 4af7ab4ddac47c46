/**
 * How far real kernels fall short of the datasheet. The defaults are typical of a tuned
 * serving engine on datacenter GPUs (vLLM-class: CUDA graphs, paged attention); a device
 * profile measured on real hardware replaces them (see profile.ts).
 */
export interface Efficiency {
  /** Model FLOPs utilization of large GEMMs (the asymptote of the batch curve). */
  readonly mfuMax: number;
  /** Batch (tokens per step) at which GEMM MFU reaches half of mfuMax. */
  readonly mfuHalfBatch: number;
  /** MFU lost per doubling of tensor parallelism (smaller per-device GEMMs, sync). */
  readonly tpMfuLossPerDoubling: number;
  /** Prefill GEMM MFU (long sequences: large, efficient GEMMs). */
  readonly prefillMfu: number;
  /** Fraction of memory bandwidth reached while streaming weights. */
  readonly weightMbu: number;
  /** Fraction of memory bandwidth reached by decode attention over a paged KV cache. */
  readonly attentionMbu: number;
  /** Fixed cost per layer per step (kernel launches, synchronization), s. */
  readonly layerOverhead: number;
  /**
   * Host-side cost per token per step (sampling, detokenization, scheduling), s. Negligible for a
   * GPU engine (0 by default); measurable for our CPU engine on small models (device profiles).
   */
  readonly tokenOverhead?: number;
  /** Per all-reduce fixed latency, s. */
  readonly allReduceLatency: number;
  /** Share of device memory the engine may use (vLLM's gpu_memory_utilization). */
  readonly memoryUtilization: number;
  /** Memory per device kept for activations and workspace, bytes. */
  readonly activationReserve: number;
}

export const DEFAULT_EFFICIENCY: Efficiency = {
  mfuMax: 0.7,
  mfuHalfBatch: 8,
  tpMfuLossPerDoubling: 0.05,
  prefillMfu: 0.6,
  weightMbu: 0.85,
  attentionMbu: 0.75,
  layerOverhead: 15e-6,
  allReduceLatency: 8e-6,
  memoryUtilization: 0.9,
  activationReserve: 2e9,
};

/** GEMM MFU at `tokens` tokens per step on `tp`-way tensor parallelism. */
export function gemmMfu(eff: Efficiency, tokens: number, tp: number): number {
  const batchCurve = tokens / (tokens + eff.mfuHalfBatch);
  const tpFactor = Math.max(0.5, 1 - eff.tpMfuLossPerDoubling * Math.log2(Math.max(1, tp)));
  return eff.mfuMax * batchCurve * tpFactor;
}

/**
 * Share of a GPU's memory bandwidth a kernel reaches with `smShare` of its compute units
 * (Adrenaline: 20% of the SMs reach about 60% of A100 bandwidth; memory-bound kernels saturate early).
 */
export function bandwidthShareOfSms(smShare: number): number {
  return Math.min(1, 3 * Math.max(0, smShare));
}
