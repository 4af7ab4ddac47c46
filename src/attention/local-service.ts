import type { KernelBackend } from "../kernels/backend.js";
import { KvAttention, type KvGeometry } from "./kv-attention.js";
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
  /** Cached prefixes, where every layer's KV shares one block table (no window pool). */
  readonly prefix: PrefixCaching | null;
  /** Speculative drafts' KV may be overwritten (see AttentionService.rewritesKv). */
  readonly rewritesKv = true;

  /**
   * `numBlocks`: of the global layers' pool when a model mixing window and global layers keeps
   * the window layers' KV apart (their pool holds only blocks inside the window; window-blocks.ts).
   */
  constructor(backend: KernelBackend, geometry: KvGeometry, numBlocks: number) {
    this.kv = new KvAttention(backend, geometry, numBlocks, true);
    const a = this.kv.allocator;
    // A window pool holds a sequence's window blocks apart, which a cached prefix cannot share; a
    // window over every layer keeps all blocks in one pool and masks, so it can.
    this.prefix =
      this.kv.windowAllocator === null
        ? {
            attach: (seqId, keys) => {
              const blocks = a.lookupRun(keys);
              a.attach(seqId, blocks);
              return blocks.length;
            },
            publish: (seqId, index, key) => void a.retain(seqId, index, key),
            cachedBlocks: () => a.cachedBlocks,
          }
        : null;
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
