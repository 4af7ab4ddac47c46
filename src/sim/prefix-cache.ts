/**
 * A decode instance's prefix cache in the simulator: the trace's prefix blocks (trace.ts,
 * PrefixBlocks) whose KV the instance keeps, least recently used evicted first, at most as many as
 * its KV pool holds. The runtime's cache (attention/block-allocator.ts) keeps a block after its
 * last request lets go and evicts it only when a reservation needs the room; bounding the cache by
 * the whole pool rather than by what running requests leave free is the model's simplification (it
 * overstates hits while the pool is full), as is counting a request that attached cached blocks as
 * holding its whole context (shared blocks are counted once in the runtime).
 */
export class SimPrefixCache {
  /** Cached block ids in order of last use (a Map iterates in insertion order). */
  private readonly lru = new Map<number, true>();

  constructor(readonly capacityBlocks: number) {}

  get size(): number {
    return this.lru.size;
  }

  /**
   * How many of ids[from..to) are cached as a leading run; the run's blocks become the most
   * recently used.
   */
  match(ids: Int32Array, from: number, to: number): number {
    let n = 0;
    while (from + n < to && this.lru.has(ids[from + n]!)) n++;
    for (let i = from; i < from + n; i++) this.touch(ids[i]!);
    return n;
  }

  /** Keeps ids[from..to) (a prompt's blocks, computed), evicting the least recently used beyond the capacity. */
  insert(ids: Int32Array, from: number, to: number): void {
    if (this.capacityBlocks <= 0) return;
    for (let i = from; i < to; i++) this.touch(ids[i]!);
    for (const id of this.lru.keys()) {
      if (this.lru.size <= this.capacityBlocks) break;
      this.lru.delete(id);
    }
  }

  private touch(id: number): void {
    this.lru.delete(id);
    this.lru.set(id, true);
  }
}
