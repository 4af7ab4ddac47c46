/**
 * A paged KV pool counted in blocks, with the runtime allocator's semantics
 * (attention/block-allocator.ts): a sequence's table grows to cover [0, tokens) all or nothing,
 * and a release frees all of it. Block granularity matters on small caches: each sequence wastes
 * up to a block, which decides when the runtime preempts.
 */
export class BlockPool {
  private readonly held = new Map<number, number>();
  private free: number;

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    this.free = numBlocks;
  }

  get usedBlocks(): number {
    return this.numBlocks - this.free;
  }

  private need(seqId: number, tokens: number): number {
    return Math.max(0, Math.ceil(tokens / this.blockSize) - (this.held.get(seqId) ?? 0));
  }

  canReserve(seqId: number, tokens: number): boolean {
    return this.need(seqId, tokens) <= this.free;
  }

  reserve(seqId: number, tokens: number): boolean {
    const need = this.need(seqId, tokens);
    if (need > this.free) return false;
    this.free -= need;
    this.held.set(seqId, (this.held.get(seqId) ?? 0) + need);
    return true;
  }

  release(seqId: number): void {
    const n = this.held.get(seqId);
    if (n === undefined) return;
    this.free += n;
    this.held.delete(seqId);
  }
}
