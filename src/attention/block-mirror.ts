import { BlockAllocator } from "./block-allocator.js";
import type { KvGeometry } from "./kv-attention.js";
import { type GlobalPool, reserveInPools } from "./window-blocks.js";

/**
 * The model side's exact mirror of one attention worker's block accounting: its global pool (the
 * one admission counts) and, where the worker keeps the window layers' KV in a pool of its own
 * (window-blocks.ts), that pool too. The window pool's freeing rule depends on the reservation
 * alone, so applying it here at every RESERVE the worker is sent keeps both tables identical to
 * the worker's; the native data plane's STEP carries both.
 */
export class BlockMirror extends BlockAllocator {
  /** The window layers' pool, or null when every layer's KV is in the global pool. */
  readonly window: BlockAllocator | null;
  /** The global pool as reserveInPools takes it. */
  private readonly global: GlobalPool;

  constructor(
    private readonly geometry: KvGeometry,
    numBlocks: number,
    windowBlocks: number,
  ) {
    super(numBlocks, geometry.blockSize);
    if (windowBlocks > 0 && geometry.slidingWindow === null)
      throw new Error(
        `attention worker keeps a window pool of ${windowBlocks} blocks for a model without a window`,
      );
    this.window = windowBlocks > 0 ? new BlockAllocator(windowBlocks, geometry.blockSize) : null;
    // The base class's reserve (this class's own comes back to reserveAhead), made once: reservations
    // run every step for every sequence.
    this.global = {
      canReserve: (s, n) => super.canReserve(s, n),
      reserve: (s, n) => super.reserve(s, n),
    };
  }

  /**
   * As the worker's KvAttention.reserve: both pools, all or nothing, the global one `ahead` further,
   * the window's front freed.
   */
  reserveAhead(seqId: number, numTokens: number, ahead: number): boolean {
    return reserveInPools(this.geometry, this.global, this.window, seqId, numTokens, ahead);
  }

  /**
   * reserveAhead, and whether it took or let go of a block in either pool (the worker, told of
   * nothing else, would account the same). The window pool follows numTokens alone, so a step
   * inside the global pool's reservation can still move it.
   */
  reserveAheadMoves(seqId: number, numTokens: number, ahead: number): boolean {
    const before = this.blockMoves + (this.window?.blockMoves ?? 0);
    this.reserveAhead(seqId, numTokens, ahead);
    return this.blockMoves + (this.window?.blockMoves ?? 0) !== before;
  }

  override reserve(seqId: number, numTokens: number): boolean {
    return this.reserveAhead(seqId, numTokens, 0);
  }

  override release(seqId: number): void {
    super.release(seqId);
    this.window?.release(seqId);
  }
}
