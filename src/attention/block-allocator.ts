/**
 * Paged KV bookkeeping: a pool of fixed-size blocks and, per sequence, the list of blocks that
 * hold its positions in order (its block table). Pure accounting; the storage lives elsewhere.
 * A table may start with freed entries (-1): a sliding window's layers no longer read positions
 * that far back, so their blocks went back to the pool (see `reserve`'s keepFrom).
 *
 * Prefix caching: a full block whose KV is written may be *retained* (`retain`); it then stays in
 * the pool with its contents after its last sequence lets go, and a later sequence with the same
 * leading tokens `attach`es it instead of computing it again. Blocks are reference-counted for
 * that. Unreferenced retained blocks count as free: a reservation takes never-used blocks first,
 * then evicts retained ones, least recently released first. The model side keys retained blocks
 * by the hash of the tokens up to their end (`lookup`); an attention worker runs the same
 * operations in the same order without keys, so its accounting stays identical to the mirror's.
 */
export class BlockAllocator {
  private readonly freeList: Int32Array;
  private freeTop: number;
  private readonly tables = new Map<number, number[]>();
  /** Per block: the tables holding it. */
  private readonly refs: Int32Array;
  /** Per block: 1 while it holds a retained prefix (kept when unreferenced, until evicted). */
  private readonly retained: Uint8Array;
  /** Unreferenced retained blocks, a doubly linked list from least to most recently released. */
  private readonly lruPrev: Int32Array;
  private readonly lruNext: Int32Array;
  private lruHead = -1;
  private lruTail = -1;
  private lruCount = 0;
  private retainedCount = 0;
  /**
   * Blocks taken into tables or let go from them so far: a reservation that leaves it as it was
   * changed nothing a mirror of this allocator's accounting needs to hear of.
   */
  blockMoves = 0;
  /** Model side only: the key of each retained block, and the block of each key. */
  private readonly keyOf: (string | undefined)[];
  private readonly byKey = new Map<string, number>();
  /** Retained blocks evicted so far. */
  evictions = 0;
  /** One past the highest block id ever handed out: blocks from here on were never used. */
  private highWaterMark = 0;

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
    this.refs = new Int32Array(numBlocks);
    this.retained = new Uint8Array(numBlocks);
    this.lruPrev = new Int32Array(numBlocks).fill(-1);
    this.lruNext = new Int32Array(numBlocks).fill(-1);
    this.keyOf = new Array(numBlocks);
  }

  /** Blocks a reservation can take: never-used ones and unreferenced retained ones. */
  get freeBlocks(): number {
    return this.freeTop + this.lruCount;
  }

  get usedBlocks(): number {
    return this.numBlocks - this.freeBlocks;
  }

  /**
   * One past the highest block id a table has ever taken (low ids go first, freed ones are taken
   * again before never-used ones): the blocks from here on have never held anything.
   */
  get highWater(): number {
    return this.highWaterMark;
  }

  /** Blocks holding a retained prefix, referenced or not. */
  get cachedBlocks(): number {
    return this.retainedCount;
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
    return this.blocksNeeded(seqId, numTokens, keepFrom) <= this.freeBlocks;
  }

  /**
   * Grows the sequence's table to cover [0, numTokens); all or nothing. Entries below `keepFrom`
   * (a block index) are not needed any more: the blocks there go back to the pool and new
   * entries there get none (-1).
   */
  reserve(seqId: number, numTokens: number, keepFrom = 0): boolean {
    const need = this.blocksNeeded(seqId, numTokens, keepFrom);
    if (need > this.freeBlocks) return false;
    const table = this.tableOf(seqId);
    for (let i = 0; i < Math.min(keepFrom, table.length); i++) {
      if (table[i]! >= 0) this.drop(table[i]!);
      table[i] = -1;
    }
    const end = this.blocksFor(numTokens);
    for (let i = table.length; i < end; i++) table.push(i < keepFrom ? -1 : this.take());
    return true;
  }

  release(seqId: number): void {
    const table = this.tables.get(seqId);
    if (!table) return;
    // Last block first: a retained chain is then evicted from its end, so what stays is still a
    // prefix a later lookup can reach.
    for (let i = table.length - 1; i >= 0; i--) if (table[i]! >= 0) this.drop(table[i]!);
    this.tables.delete(seqId);
  }

  table(seqId: number): readonly number[] | undefined {
    return this.tables.get(seqId);
  }

  sequences(): IterableIterator<number> {
    return this.tables.keys();
  }

  /** The retained block holding `key`'s prefix, or -1. */
  lookup(key: string): number {
    return this.byKey.get(key) ?? -1;
  }

  /** The retained blocks of the longest leading run of `keys` found (at most `max`). */
  lookupRun(keys: readonly string[], max = keys.length): number[] {
    const blocks: number[] = [];
    for (let i = 0; i < Math.min(max, keys.length); i++) {
      const b = this.lookup(keys[i]!);
      if (b < 0) break;
      blocks.push(b);
    }
    return blocks;
  }

  /** Throws unless `attach(seqId, blocks)` would succeed. */
  checkAttach(seqId: number, blocks: ArrayLike<number>): void {
    if (this.held(seqId) > 0) throw new Error(`attach: sequence ${seqId} already holds KV blocks`);
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i]!;
      if (!(Number.isInteger(b) && b >= 0 && b < this.numBlocks && this.retained[b] === 1))
        throw new Error(`attach: block ${b} holds no cached prefix`);
    }
  }

  /**
   * Starts the table of a sequence that holds nothing yet with retained blocks (a cached prefix),
   * after `from` freed entries (a window pool: the blocks before the window are not needed).
   * Throws, changing nothing, on a block that is not retained or a sequence already holding blocks.
   */
  attach(seqId: number, blocks: ArrayLike<number>, from = 0): void {
    this.checkAttach(seqId, blocks);
    if (!(Number.isInteger(from) && from >= 0)) throw new Error(`attach: bad first index ${from}`);
    const table = this.tableOf(seqId);
    for (let i = 0; i < from; i++) table.push(-1);
    for (let i = 0; i < blocks.length; i++) {
      const b = blocks[i]!;
      if (this.refs[b] === 0) this.unlink(b);
      this.refs[b]!++;
      table.push(b);
    }
  }

  /**
   * Marks the block at `index` of the sequence's table as holding a cached prefix (its KV is
   * written and full). With a key (model side): false, changing nothing, when another block
   * already holds that key, or the block is retained already. Throws on an index with no block.
   */
  retain(seqId: number, index: number, key?: string): boolean {
    const b = this.tables.get(seqId)?.[index] ?? -1;
    if (b < 0) throw new Error(`retain: sequence ${seqId} has no block at index ${index}`);
    if (this.retained[b] === 1 || (key !== undefined && this.byKey.has(key))) return false;
    this.retained[b] = 1;
    this.retainedCount++;
    if (key !== undefined) {
      this.byKey.set(key, b);
      this.keyOf[b] = key;
    }
    return true;
  }

  private tableOf(seqId: number): number[] {
    let table = this.tables.get(seqId);
    if (!table) {
      table = [];
      this.tables.set(seqId, table);
    }
    return table;
  }

  /** A block for a table: a never-used one, else the least recently released retained one. */
  private take(): number {
    let b: number;
    if (this.freeTop > 0) b = this.freeList[--this.freeTop]!;
    else {
      b = this.lruHead;
      this.unlink(b);
      this.forget(b);
      this.evictions++;
    }
    this.refs[b] = 1;
    this.blockMoves++;
    if (b >= this.highWaterMark) this.highWaterMark = b + 1;
    return b;
  }

  /** A table lets go of a block: the last one frees it, or keeps it as a cached prefix. */
  private drop(b: number): void {
    this.blockMoves++;
    if (--this.refs[b]! > 0) return;
    if (this.retained[b] === 0) {
      this.freeList[this.freeTop++] = b;
      return;
    }
    this.lruPrev[b] = this.lruTail;
    this.lruNext[b] = -1;
    if (this.lruTail >= 0) this.lruNext[this.lruTail] = b;
    else this.lruHead = b;
    this.lruTail = b;
    this.lruCount++;
  }

  private unlink(b: number): void {
    const p = this.lruPrev[b]!;
    const n = this.lruNext[b]!;
    if (p >= 0) this.lruNext[p] = n;
    else this.lruHead = n;
    if (n >= 0) this.lruPrev[n] = p;
    else this.lruTail = p;
    this.lruPrev[b] = -1;
    this.lruNext[b] = -1;
    this.lruCount--;
  }

  private forget(b: number): void {
    this.retained[b] = 0;
    this.retainedCount--;
    const key = this.keyOf[b];
    if (key !== undefined) {
      this.byKey.delete(key);
      this.keyOf[b] = undefined;
    }
  }
}
