/**
 * Paged KV bookkeeping: a pool of fixed-size blocks and, per sequence, the list of blocks that
 * hold its positions in order (its block table). Pure accounting; the storage lives elsewhere.
 */
export class BlockAllocator {
  private readonly freeList: Int32Array;
  private freeTop: number;
  private readonly tables = new Map<number, number[]>();

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    if (!Number.isInteger(numBlocks) || numBlocks < 1)
      throw new Error(`KV cache needs at least one block (got ${numBlocks})`);
    this.freeList = new Int32Array(numBlocks);
    // Hand out low block ids first.
    for (let i = 0; i < numBlocks; i++) this.freeList[i] = numBlocks - 1 - i;
    this.freeTop = numBlocks;
  }

  get freeBlocks(): number {
    return this.freeTop;
  }

  get usedBlocks(): number {
    return this.numBlocks - this.freeTop;
  }

  blocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  held(seqId: number): number {
    return this.tables.get(seqId)?.length ?? 0;
  }

  blocksNeeded(seqId: number, numTokens: number): number {
    return Math.max(0, this.blocksFor(numTokens) - this.held(seqId));
  }

  canReserve(seqId: number, numTokens: number): boolean {
    return this.blocksNeeded(seqId, numTokens) <= this.freeTop;
  }

  /** Grows the sequence's table to cover [0, numTokens); all or nothing. */
  reserve(seqId: number, numTokens: number): boolean {
    const need = this.blocksNeeded(seqId, numTokens);
    if (need > this.freeTop) return false;
    let table = this.tables.get(seqId);
    if (!table) {
      table = [];
      this.tables.set(seqId, table);
    }
    for (let i = 0; i < need; i++) table.push(this.freeList[--this.freeTop]!);
    return true;
  }

  release(seqId: number): void {
    const table = this.tables.get(seqId);
    if (!table) return;
    for (const b of table) this.freeList[this.freeTop++] = b;
    this.tables.delete(seqId);
  }

  table(seqId: number): readonly number[] | undefined {
    return this.tables.get(seqId);
  }

  sequences(): IterableIterator<number> {
    return this.tables.keys();
  }
}
