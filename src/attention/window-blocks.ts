import { kvBytesPerHeadToken } from "../kernels/kv-cache.js";
import type { BlockAllocator } from "./block-allocator.js";
import type { KvGeometry } from "./kv-attention.js";

/**
 * KV blocks of a model whose window layers sit among global ones (Gemma): the window layers keep
 * a block pool and block tables of their own, in which a sequence holds only the blocks its next
 * step can still read, so the rest go back to the pool while the global layers keep every
 * position. This file holds the arithmetic of that split; KvAttention holds the pools.
 *
 * What the next step can read is known from the reservation alone: the scheduler reserves
 * [0, numTokens) for a step of at most maxTokens tokens, so no query of it sits below
 * numTokens − maxTokens, and none of its window keys below numTokens − maxTokens + 1 − window.
 * The model side's mirror of a worker's accounting (remote attention) sees only the global pool,
 * which is why the window pool is sized never to run out first (see `windowPoolBlocks`).
 */

/** The window and global layers' counts when the geometry mixes them (else null: one pool). */
export function windowSplit(g: KvGeometry): { window: number; global: number } | null {
  if (g.slidingWindow === null || g.slidingLayers === undefined) return null;
  const window = g.slidingLayers.filter(Boolean).length;
  const global = g.numLayers - window;
  return window > 0 && global > 0 ? { window, global } : null;
}

/** Most window-pool blocks one sequence holds: the window plus a step, over block boundaries. */
export function windowBlocksPerSeq(g: KvGeometry): number {
  return Math.ceil((g.maxTokens + g.slidingWindow! - 1) / g.blockSize) + 1;
}

/**
 * The window pool's size for a global pool of `globalBlocks`: no sequence holds more window
 * blocks than global ones, nor more than `windowBlocksPerSeq`, so this many never run out
 * before the global pool does.
 */
export function windowPoolBlocks(g: KvGeometry, globalBlocks: number): number {
  return Math.min(globalBlocks, g.maxSeqs * windowBlocksPerSeq(g));
}

/** The first block index of a sequence's window table still needed once [0, numTokens) is reserved. */
export function windowKeepFrom(g: KvGeometry, numTokens: number): number {
  return Math.max(0, Math.floor((numTokens - g.maxTokens + 1 - g.slidingWindow!) / g.blockSize));
}

/** What reserveInPools needs of the global pool (a BlockMirror passes its own base-class methods). */
export interface GlobalPool {
  canReserve(seqId: number, numTokens: number): boolean;
  reserve(seqId: number, numTokens: number): boolean;
}

/**
 * The one reservation rule of a cache whose window layers have a pool of their own, for the worker's
 * KvAttention and the model side's mirror of it alike: both pools or neither, the global pool
 * `ahead` tokens beyond the step's end, the window pool's blocks before windowKeepFrom freed.
 */
export function reserveInPools(
  g: KvGeometry,
  global: GlobalPool,
  window: BlockAllocator | null,
  seqId: number,
  numTokens: number,
  ahead: number,
): boolean {
  const keep = window ? windowKeepFrom(g, numTokens) : 0;
  if (!global.canReserve(seqId, numTokens + ahead)) return false;
  if (window && !window.canReserve(seqId, numTokens, keep)) return false;
  window?.reserve(seqId, numTokens, keep);
  return global.reserve(seqId, numTokens + ahead);
}

/** Bytes of one block of `layers` layers' K and V. */
function blockBytes(g: KvGeometry, layers: number): number {
  return layers * g.numKvHeads * g.blockSize * kvBytesPerHeadToken(g.kvDtype, g.headDim);
}

/**
 * Global-pool blocks that `budget` bytes hold, the window pool (`windowPoolBlocks`) included.
 * With one pool, or a window pool as large as the global one, that is budget over a block of
 * every layer; once the window pool reaches its cap, the rest of the budget goes to global blocks
 * of the global layers only: the capacity the freed window blocks give back.
 */
export function globalBlocksForBudget(g: KvGeometry, budget: number, split: boolean): number {
  const s = split ? windowSplit(g) : null;
  const all = blockBytes(g, g.numLayers);
  if (!s) return Math.floor(budget / all);
  const even = Math.floor(budget / all);
  const cap = g.maxSeqs * windowBlocksPerSeq(g);
  if (even <= cap) return even;
  return Math.floor((budget - cap * blockBytes(g, s.window)) / blockBytes(g, s.global));
}
