/**
 * Paged KV bookkeeping: a pool of fixed-size blocks and, per sequence, the list of blocks that
 * hold its positions in order (its block table). Pure accounting; the storage lives elsewhere.
 * A table may start with freed entries (-1): a sliding window's layers no longer read positions
 * that far back, so their blocks went back to the pool (see `reserve`'s keepFrom).
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

  /** Entries of the sequence's table (the positions it covers, in blocks), freed ones included. */
  held(seqId: number): number {
    return this.tables.get(seqId)?.length ?? 0;
  }

  /** Blocks the sequence holds now (its table's entries less the freed ones). */
  blocksHeld(seqId: number): number {
    let n = 0;
    for (const b of this.tables.get(seqId) ?? []) if (b >= 0) n++;
    return n;
  }

  /** New blocks `reserve(seqId, numTokens, keepFrom)` would take. */
  blocksNeeded(seqId: number, numTokens: number, keepFrom = 0): number {
    return Math.max(0, this.blocksFor(numTokens) - Math.max(this.held(seqId), keepFrom));
  }

  canReserve(seqId: number, numTokens: number, keepFrom = 0): boolean {
    return this.blocksNeeded(seqId, numTokens, keepFrom) <= this.freeTop;
  }

  /**
   * Grows the sequence's table to cover [0, numTokens); all or nothing. Entries below `keepFrom`
   * (a block index) are not needed any more: the blocks there go back to the pool and new
   * entries there get none (-1).
   */
  reserve(seqId: number, numTokens: number, keepFrom = 0): boolean {
    const need = this.blocksNeeded(seqId, numTokens, keepFrom);
    if (need > this.freeTop) return false;
    let table = this.tables.get(seqId);
    if (!table) {
      table = [];
      this.tables.set(seqId, table);
    }
    for (let i = 0; i < Math.min(keepFrom, table.length); i++) {
      if (table[i]! >= 0) this.freeList[this.freeTop++] = table[i]!;
      table[i] = -1;
    }
    const end = this.blocksFor(numTokens);
    for (let i = table.length; i < end; i++) table.push(i < keepFrom ? -1 : this.freeList[--this.freeTop]!);
    return true;
  }

  release(seqId: number): void {
    const table = this.tables.get(seqId);
    if (!table) return;
    for (const b of table) if (b >= 0) this.freeList[this.freeTop++] = b;
    this.tables.delete(seqId);
  }

  table(seqId: number): readonly number[] | undefined {
    return this.tables.get(seqId);
  }

  sequences(): IterableIterator<number> {
    return this.tables.keys();
  }
}
