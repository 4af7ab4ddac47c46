/**
 * Attention as a service: the KV cache and attention math live behind this interface, so the
 * model side (slices of the forward pass) never knows whether attention runs in-process, in one
 * remote attention worker, or sharded over several.
 *
 * Per layer the model side calls `beginLayer` as soon as q exists (early q: a remote worker starts
 * on the cached tokens while k and v are still being computed), then `finishLayer` with k and v;
 * when that returns (or its promise resolves), `out` holds the attention output.
 */
export interface AttentionStep {
  /** Query tokens in this step (decode: one per sequence; prefill chunks: several). */
  nTokens: number;
  nSeqs: number;
  /** [nSeqs] engine sequence ids. */
  readonly seqIds: Int32Array;
  /** [nSeqs + 1] offsets: tokens of sequence s are rows seqStart[s] .. seqStart[s + 1] - 1. */
  readonly seqStart: Int32Array;
  /** [nTokens] absolute position of each token in its sequence (its KV slot index). */
  readonly positions: Int32Array;
}

export interface KvUsage {
  /** Which attention worker (or "local"). */
  readonly worker: string;
  readonly usedBlocks: number;
  readonly totalBlocks: number;
  readonly blockSize: number;
}

export interface AttentionService {
  /** e.g. "in-process", "2 attention workers (head-partitioned, shm)". */
  readonly description: string;
  readonly blockSize: number;
  /**
   * Grows sequence `seqId`'s KV reservation to hold positions [0, numTokens). Returns false and
   * changes nothing if there is no room. Cheap and synchronous: remote services keep an exact
   * mirror of their workers' block accounting and send the allocation ahead of the next layer.
   */
  reserve(seqId: number, numTokens: number): boolean;
  /** Whether `reserve(seqId, numTokens)` would succeed right now. */
  canReserve(seqId: number, numTokens: number): boolean;
  /** Frees every block the sequence holds, on every worker. Unknown ids are ignored. */
  release(seqId: number): void;
  /** Blocks needed beyond what the sequence holds to reach numTokens. */
  blocksNeeded(seqId: number, numTokens: number): number;
  usage(): readonly KvUsage[];

  beginLayer(layer: number, step: AttentionStep, q: Float32Array): void;
  finishLayer(
    layer: number,
    step: AttentionStep,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
  ): void | Promise<void>;

  close(): Promise<void>;
}
