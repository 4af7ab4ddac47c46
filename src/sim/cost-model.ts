import { type Efficiency, gemmMfu } from "./efficiency.js";
import type { Accelerator, SimModel } from "./types.js";

/**
 * The analytic cost models of PAPERS.md: roofline non-attention time, bandwidth-bound attention,
 * model↔attention traffic, KV capacity, Lamina's minimum bandwidth. Everything is in seconds and bytes.
 */

/** Query width (heads × head_dim); equals d for Llama-family models. */
export function queryDim(m: SimModel): number {
  return m.heads * m.headDim;
}

/** K or V width (kv heads × head_dim) = d / G. */
export function kvDim(m: SimModel): number {
  return m.kvHeads * m.headDim;
}

/** GQA group size G. */
export function gqaGroup(m: SimModel): number {
  return m.heads / m.kvHeads;
}

/** KV cache bytes per token: K and V for every layer (2·L·(d/G)·e). */
export function kvBytesPerToken(m: SimModel): number {
  return 2 * m.layers * kvDim(m) * m.bytesPerElement;
}

/** Model↔attention bytes per token per layer: q and the output (d each), k and v (d/G each): (2 + 2/G)·e·d. */
export function transferBytesPerTokenLayer(m: SimModel): number {
  return (2 * queryDim(m) + 2 * kvDim(m)) * m.bytesPerElement;
}

/** Bytes crossing the model↔attention network per decode step of batch B: (2 + 2/G)·e·d·B·L. */
export function transferBytesPerStep(m: SimModel, batch: number): number {
  return transferBytesPerTokenLayer(m) * batch * m.layers;
}

/** Parameters that take part in matrix products (all but the input embedding table). */
export function matmulParams(m: SimModel): number {
  return Math.max(m.params / 2, m.params - m.vocab * m.hidden);
}

/** FLOPs of the non-attention operators per token: 2·N. */
export function nonAttentionFlopsPerToken(m: SimModel): number {
  return 2 * matmulParams(m);
}

/** Whether `devices` devices can hold the weights with room left for activations. */
export function weightsFit(m: SimModel, acc: Accelerator, devices: number, eff: Efficiency): boolean {
  return usableBytes(acc, devices, eff) > m.weightBytes;
}

/** Memory the engine may use on `devices` devices after the activation reserve. */
export function usableBytes(acc: Accelerator, devices: number, eff: Efficiency): number {
  return devices * (acc.memoryBytes * eff.memoryUtilization - eff.activationReserve);
}

/** KV tokens that fit in `bytes` of memory. */
export function kvCapacityTokens(m: SimModel, bytes: number): number {
  return Math.max(0, Math.floor(bytes / kvBytesPerToken(m)));
}

/** KV tokens per group of `devices` devices that also hold the weights (tensor parallel). */
export function kvCapacityAfterWeights(
  m: SimModel,
  acc: Accelerator,
  devices: number,
  eff: Efficiency,
): number {
  return kvCapacityTokens(m, usableBytes(acc, devices, eff) - m.weightBytes);
}

export interface NonAttentionTime {
  /** FLOP-limited time. */
  compute: number;
  /** Weight-streaming time. */
  memory: number;
  /** Tensor-parallel all-reduces. */
  comm: number;
  /** Launch and sync overheads. */
  overhead: number;
  total: number;
}

/**
 * MTIME: one decode step of the non-attention operators for `tokens` tokens on a `tp`-way group.
 * Roofline: max(FLOPs / (peak·MFU), (weights + activations) / (bandwidth·MBU)), plus two all-reduces
 * per layer when tp > 1 and a fixed per-layer overhead.
 */
export function nonAttentionTime(
  m: SimModel,
  acc: Accelerator,
  tp: number,
  tokens: number,
  eff: Efficiency,
  out: NonAttentionTime,
): NonAttentionTime {
  const flops = nonAttentionFlopsPerToken(m) * tokens;
  out.compute = tokens > 0 ? flops / (tp * acc.flops * gemmMfu(eff, tokens, tp)) : 0;
  const bytes = m.weightBytes / tp + 2 * m.bytesPerElement * tokens * m.hidden * m.layers;
  out.memory = bytes / (acc.memoryBandwidth * eff.weightMbu);
  out.comm = 0;
  if (tp > 1) {
    const link = acc.interChipBandwidth > 0 ? acc.interChipBandwidth : acc.nicBandwidth;
    const perAllReduce =
      eff.allReduceLatency + (2 * (tp - 1) * m.bytesPerElement * tokens * m.hidden) / (tp * link);
    out.comm = 2 * m.layers * perAllReduce;
  }
  out.overhead = m.layers * eff.layerOverhead + tokens * (eff.tokenOverhead ?? 0);
  out.total = Math.max(out.compute, out.memory) + out.comm + out.overhead;
  return out;
}

/** ATIME: decode attention over `kvTokens` cached tokens spread over `devices` devices (bandwidth-bound). */
export function attentionTime(
  m: SimModel,
  acc: Accelerator,
  devices: number,
  kvTokens: number,
  eff: Efficiency,
  bandwidthShare = 1,
): number {
  return (
    (kvTokens * kvBytesPerToken(m)) / (devices * acc.memoryBandwidth * eff.attentionMbu * bandwidthShare)
  );
}

/**
 * Prefill of `tokens` prompt tokens whose per-request lengths have squared sum `sumSquares`:
 * GEMMs 2·N per token plus causal attention 2·L·d·p² per request, at prefill MFU, never faster
 * than one pass over the weights.
 */
export function prefillTime(
  m: SimModel,
  acc: Accelerator,
  tp: number,
  tokens: number,
  sumSquares: number,
  eff: Efficiency,
  computeShare = 1,
): number {
  if (tokens <= 0) return 0;
  const flops = nonAttentionFlopsPerToken(m) * tokens + 2 * m.layers * queryDim(m) * sumSquares;
  const tpFactor = Math.max(0.5, 1 - eff.tpMfuLossPerDoubling * Math.log2(Math.max(1, tp)));
  const compute = flops / (tp * acc.flops * eff.prefillMfu * tpFactor * computeShare);
  const memory = m.weightBytes / tp / (acc.memoryBandwidth * eff.weightMbu);
  return Math.max(compute, memory) + m.layers * eff.layerOverhead;
}

/**
 * Lamina's minimum network bandwidth (bytes/s): (2 + 2/G)·e·d·B·L / (α·(MTIME + ATIME)).
 */
export function minimumBandwidth(
  m: SimModel,
  batch: number,
  alpha: number,
  mtime: number,
  atime: number,
): number {
  if (!(alpha > 0 && alpha <= 1)) throw new Error(`alpha must be in (0, 1], got ${alpha}`);
  return transferBytesPerStep(m, batch) / (alpha * (mtime + atime));
}

/** Hourly price of a set of (accelerator, count) pairs. */
export function clusterPrice(parts: ReadonlyArray<{ acc: Accelerator; count: number }>): number {
  let sum = 0;
  for (const p of parts) sum += p.acc.pricePerHour * p.count;
  return sum;
}
