/**
 * The replica's KV pool with prefix caching, the runtime allocator's semantics
 * (attention/block-allocator.ts, which the simulator does not import): blocks are
 * reference-counted; a full block whose KV is written may be retained under its key (a number
 * here, the runtime's hash of every token to the block's end) and then stays after its last
 * sequence lets go, counted free, until a reservation that finds no never-used block evicts it
 * (least recently let go first; a released table lets go of its last block first, so a chain is
 * evicted from its end). A new sequence attaches the retained blocks of its longest cached prefix.
 * The same API as BlockPool for everything else.
 */
export class CachingBlockPool {
  private readonly tables = new Map<number, number[]>();
  private readonly refs: Int32Array;
  private readonly keyOf: (number | undefined)[];
  private readonly byKey = new Map<number, number>();
  /** Never-used blocks. */
  private readonly fresh: number[] = [];
  /** Unreferenced retained blocks, least recently let go first (a Map keeps insertion order). */
  private readonly lru = new Map<number, true>();
  evictions = 0;

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    this.refs = new Int32Array(numBlocks);
    this.keyOf = new Array(numBlocks);
    for (let b = numBlocks - 1; b >= 0; b--) this.fresh.push(b);
  }

  get freeBlocks(): number {
    return this.fresh.length + this.lru.size;
  }

  get usedBlocks(): number {
    return this.numBlocks - this.freeBlocks;
  }

  /** Blocks holding a retained prefix, referenced or not. */
  get cachedBlocks(): number {
    return this.byKey.size;
  }

  private need(seqId: number, tokens: number): number {
    return Math.max(0, Math.ceil(tokens / this.blockSize) - (this.tables.get(seqId)?.length ?? 0));
  }

  canReserve(seqId: number, tokens: number): boolean {
    return this.need(seqId, tokens) <= this.freeBlocks;
  }

  reserve(seqId: number, tokens: number): boolean {
    const need = this.need(seqId, tokens);
    if (need > this.freeBlocks) return false;
    const table = this.tableOf(seqId);
    for (let i = 0; i < need; i++) table.push(this.take());
    return true;
  }

  release(seqId: number): void {
    const table = this.tables.get(seqId);
    if (!table) return;
    for (let i = table.length - 1; i >= 0; i--) this.drop(table[i]!);
    this.tables.delete(seqId);
  }

  /** The retained blocks of the longest leading run of `keys` found. */
  lookupRun(keys: readonly number[]): number[] {
    const run: number[] = [];
    for (const k of keys) {
      const b = this.byKey.get(k);
      if (b === undefined) break;
      run.push(b);
    }
    return run;
  }

  /** Starts the table of a sequence holding nothing with retained blocks. */
  attach(seqId: number, blocks: readonly number[]): void {
    if (this.tables.get(seqId)?.length) throw new Error(`attach: sequence ${seqId} already holds blocks`);
    const table = this.tableOf(seqId);
    for (const b of blocks) {
      if (this.keyOf[b] === undefined) throw new Error(`attach: block ${b} holds no cached prefix`);
      if (this.refs[b] === 0) this.lru.delete(b);
      this.refs[b]!++;
      table.push(b);
    }
  }

  /** The sequence's block `index` is full and written: kept under `key` unless a block holds that key already. */
  retain(seqId: number, index: number, key: number): void {
    const b = this.tables.get(seqId)?.[index];
    if (b === undefined) throw new Error(`retain: sequence ${seqId} has no block at index ${index}`);
    if (this.keyOf[b] !== undefined || this.byKey.has(key)) return;
    this.keyOf[b] = key;
    this.byKey.set(key, b);
  }

  private tableOf(seqId: number): number[] {
    let t = this.tables.get(seqId);
    if (!t) {
      t = [];
      this.tables.set(seqId, t);
    }
    return t;
  }

  private take(): number {
    let b = this.fresh.pop();
    if (b === undefined) {
      b = this.lru.keys().next().value as number;
      this.lru.delete(b);
      this.byKey.delete(this.keyOf[b]!);
      this.keyOf[b] = undefined;
      this.evictions++;
    }
    this.refs[b] = 1;
    return b;
  }

  private drop(b: number): void {
    if (--this.refs[b]! > 0) return;
    if (this.keyOf[b] === undefined) this.fresh.push(b);
    else this.lru.set(b, true);
  }
}
