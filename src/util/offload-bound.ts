/**
 * Adrenaline's load-aware offloading (PAPERS.md §3): an upper bound on the offload ratio N/M
 * (offloaded / kept requests), OB = min(OB_mem, OB_comp), and the per-request decision.
 *
 *   OB_mem  = min(Σ KV capacity of the prefill executors / decode KV capacity,
 *                 Σ attention bandwidth of the prefill executors / decode bandwidth)
 *   OB_comp = (B_max − B_tpot) / B_tpot
 *
 * B_max is the batch the decode instance's non-attention work may reach (its batch cap: beyond it
 * steps turn compute-bound or miss the TPOT target); B_tpot the batch it sustains with local KV
 * alone, every request counted at the maximum sequence length.
 *
 * This is the one implementation: the runtime (pd/offload-policy.ts, in KV blocks and kernel
 * threads) and the simulator (sim/, in the same units when it predicts our engine, in tokens and
 * bytes/s for catalog devices) both call it, so they cannot drift apart. It lives in util/ because
 * the simulator may import nothing of the runtime.
 */
export interface BoundInputs {
  /** KV capacity of each live prefill instance's attention executor (blocks, or any unit shared with the next two). */
  readonly prefillKvBlocks: readonly number[];
  readonly decodeKvBlocks: number;
  /**
   * Attention bandwidth of each live prefill instance's executor and of the decode instance: kernel
   * threads in the runtime (all instances share one memory system there), bytes/s for separate devices.
   */
  readonly prefillAttentionThreads: readonly number[];
  readonly decodeThreads: number;
  /** Decode batch cap (B_max) and the capacity one request takes at the maximum sequence length. */
  readonly maxBatch: number;
  readonly blocksPerRequest: number;
}

export interface OffloadBound {
  readonly bound: number;
  readonly memory: number;
  readonly capacity: number;
  readonly bandwidth: number;
  readonly compute: number;
  /** B_tpot: requests the decode instance holds locally at the maximum sequence length. */
  readonly localBatch: number;
}

export function offloadBound(i: BoundInputs): OffloadBound {
  const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
  const capacity = sum(i.prefillKvBlocks) / Math.max(1, i.decodeKvBlocks);
  const bandwidth = sum(i.prefillAttentionThreads) / Math.max(1, i.decodeThreads);
  const memory = Math.min(capacity, bandwidth);
  const localBatch = Math.max(1, Math.min(i.maxBatch, Math.floor(i.decodeKvBlocks / i.blocksPerRequest)));
  const compute = Math.max(0, (i.maxBatch - localBatch) / localBatch);
  return { bound: Math.min(memory, compute), memory, capacity, bandwidth, compute, localBatch };
}

/**
 * Whether a new request is offloaded, given the kept (M) and offloaded (N) requests now: it is when
 * the ratio after it stays within `limit` (the bound, or a fixed ratio). All requests count at the
 * maximum sequence length, so this also keeps the remote side's attention load, relative to its
 * bandwidth, no larger than the local one's: remote attention stays hidden behind local attention
 * whenever limit ≤ the bandwidth ratio, which the bound guarantees.
 */
export function shouldOffload(kept: number, offloaded: number, limit: number): boolean {
  return limit > 0 && offloaded + 1 <= limit * kept + 1e-9;
}
