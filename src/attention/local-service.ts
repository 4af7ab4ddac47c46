import type { KernelBackend } from "../kernels/backend.js";
import { KvAttention, type KvGeometry } from "./kv-attention.js";
import { attachPrefix, longestPrefix, retainPrefix } from "./prefix-pools.js";
import type { AttentionService, AttentionStep, KvUsage, PrefixCaching } from "./service.js";

/**
 * Colocated placement: the KV cache and attention run in the model worker's own thread. This is
 * the same attention service interface the remote placements implement, not a second forward pass.
 */
export class LocalAttentionService implements AttentionService {
  readonly description = "in-process";
  readonly kv: KvAttention;
  /** Per micro-batch: q handed over in beginLayer (the executor's own buffer, still unchanged). */
  private readonly q: (Float32Array | undefined)[] = [];
  /** Cached prefixes, in the global pool and the window layers' own where there is one. */
  readonly prefix: PrefixCaching;
  /** Speculative drafts' KV may be overwritten (see AttentionService.rewritesKv). */
  readonly rewritesKv = true;

  /**
   * `numBlocks`: of the global layers' pool when a model mixing window and global layers keeps
   * the window layers' KV apart (their pool holds only blocks inside the window; window-blocks.ts).
   */
  constructor(backend: KernelBackend, geometry: KvGeometry, numBlocks: number) {
    this.kv = new KvAttention(backend, geometry, numBlocks, true);
    const pools = { global: this.kv.allocator, window: this.kv.windowAllocator };
    this.prefix = {
      attach: (seqId, keys) => {
        const found = longestPrefix(geometry, pools, keys);
        if (found) attachPrefix(pools, seqId, found);
        return found?.global.length ?? 0;
      },
      publish: (seqId, index, key) => void retainPrefix(pools, seqId, index, key),
      cachedBlocks: () => pools.global.cachedBlocks,
    };
  }

  get blockSize(): number {
    return this.kv.geometry.blockSize;
  }

  reserve(seqId: number, numTokens: number, ahead = 0): boolean {
    return this.kv.reserve(seqId, numTokens, ahead);
  }

  release(seqId: number): void {
    this.kv.release(seqId);
  }

  usage(): readonly KvUsage[] {
    const a = this.kv.allocator;
    return [{ worker: "local", usedBlocks: a.usedBlocks, totalBlocks: a.numBlocks, blockSize: a.blockSize }];
  }

  beginLayer(layer: number, step: AttentionStep, q: Float32Array): void {
    if (layer === 0) this.kv.prepare(step);
    this.q[step.microBatch] = q;
  }

  finishLayer(layer: number, step: AttentionStep, k: Float32Array, v: Float32Array, out: Float32Array): void {
    const q = this.q[step.microBatch];
    if (!q) throw new Error("attention: finishLayer before beginLayer");
    this.kv.run(layer, step, q, k, v, out);
  }

  async close(): Promise<void> {}
}
