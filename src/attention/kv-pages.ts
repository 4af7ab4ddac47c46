import type { KernelBackend, KvLayerCache } from "../kernels/backend.js";
import type { BlockAllocator } from "./block-allocator.js";

/**
 * Bytes of fresh KV pages populated at a time, across a pool's layers: what a reservation that
 * reaches past the populated blocks asks for at least. 32 MiB takes about 4 ms at the 8 GB/s
 * Linux populates pages in one call (a VM host, BENCHMARKS.md): small beside a step, and few calls
 * over a pool's life.
 */
export const KV_POPULATE_CHUNK_BYTES = 32 * 2 ** 20;

/**
 * Maps a KV pool's pages ahead of their first use. A cache is a fresh, lazily zeroed allocation:
 * left alone, every 4 KiB page faults on its first write inside the decode step's kvWrite, which
 * on a VM host cost about 14 µs a page (0.3 GB/s), against 8 GB/s for the same pages populated
 * in one call. Blocks are handed out low ids first (BlockAllocator), so the blocks ever used are
 * [0, highWater): each reservation that raises the mark past the populated blocks populates the
 * blocks up to it, at least a chunk at a time, in every layer of the pool. Where the backend cannot
 * populate (the reference backend), nothing happens and pages fault as before.
 */
export class KvPagePopulator {
  /** Blocks [0, populated) have their pages mapped in every layer. */
  private populated = 0;
  private readonly chunkBlocks: number;

  /** `pool`: the allocator handing out the blocks of `caches` (its numBlocks and high-water mark). */
  constructor(
    private readonly backend: Pick<KernelBackend, "populatePages">,
    private readonly caches: readonly KvLayerCache[],
    private readonly pool: Pick<BlockAllocator, "numBlocks" | "highWater">,
  ) {
    const blockBytes =
      caches.reduce((sum, c) => sum + arraysOf(c).reduce((s, a) => s + a.byteLength, 0), 0) / pool.numBlocks;
    this.chunkBlocks = Math.max(1, Math.floor(KV_POPULATE_CHUNK_BYTES / Math.max(1, blockBytes)));
  }

  /** Blocks whose pages are mapped so far. */
  get populatedBlocks(): number {
    return this.populated;
  }

  /** Makes sure the blocks the pool has ever handed out are populated, at least a chunk at a time. */
  cover(): void {
    const { numBlocks, highWater } = this.pool;
    if (highWater <= this.populated || !this.backend.populatePages) return;
    const to = Math.min(numBlocks, Math.max(highWater, this.populated + this.chunkBlocks));
    for (const c of this.caches)
      for (const a of arraysOf(c)) {
        const per = a.byteLength / numBlocks;
        this.backend.populatePages(a, this.populated * per, (to - this.populated) * per);
      }
    this.populated = to;
  }
}

/** The arrays of a layer's cache that grow with its blocks: K, V and an int8 cache's scales. */
function arraysOf(c: KvLayerCache): KvLayerCache["k"][] {
  return [c.k, c.v, ...(c.kScale ? [c.kScale] : []), ...(c.vScale ? [c.vScale] : [])];
}
