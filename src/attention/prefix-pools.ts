import type { BlockAllocator } from "./block-allocator.js";
import type { KvGeometry } from "./kv-attention.js";

/**
 * Prefix caching over a KV cache's block pools: the global pool (every layer's blocks, or the
 * global layers' where window layers keep a pool of their own) and, for a model mixing window and
 * global layers (Gemma 2 and 3, gpt-oss), the window layers' pool (window-blocks.ts).
 *
 * A cached prefix of n blocks is usable when the global pool holds all n and the window pool the
 * blocks the next step's window can reach: a query at position n·bs or later attends keys from
 * n·bs + 1 − window on, so the window blocks from `windowFromBlock(n)` to n − 1. The window pool
 * frees a sequence's blocks as its window slides past them, and a retained one stays cached
 * there until evicted, so its blocks near a prefix's end may be gone while the global pool still
 * holds the prefix: the usable prefix is then shorter (`longestPrefix` looks for it).
 *
 * The model side looks prefixes up by key (the hash of every token up to a block's end); an
 * attention worker applies the resulting attach and retain operations without keys, in the same
 * order, so its pools stay identical to the model side's mirror of them (block-mirror.ts).
 */
export interface PrefixPools {
  readonly global: BlockAllocator;
  /** The window layers' own pool, or null when every layer's KV is in the global pool. */
  readonly window: BlockAllocator | null;
}

/** A prefix found in a cache's pools, ready to attach. */
export interface FoundPrefix {
  /** Global-pool blocks of the prefix's n blocks, in order. */
  readonly global: readonly number[];
  /** The first block index the window part covers (0 without a window pool). */
  readonly windowFrom: number;
  /** Window-pool blocks of indices [windowFrom, n) (empty without a window pool). */
  readonly window: readonly number[];
}

/** The first window block a step after a prefix of `n` blocks can read. */
export function windowFromBlock(g: KvGeometry, n: number): number {
  return Math.max(0, Math.floor((n * g.blockSize + 1 - g.slidingWindow!) / g.blockSize));
}

/**
 * The prefix of exactly `n` blocks (n ≤ globalRun.length, globalRun the global pool's leading run
 * of `keys`), or null when the window pool lacks one of the blocks it needs.
 */
function prefixOf(
  g: KvGeometry,
  pools: PrefixPools,
  keys: readonly string[],
  globalRun: readonly number[],
  n: number,
): FoundPrefix | null {
  if (!pools.window) return { global: globalRun.slice(0, n), windowFrom: 0, window: [] };
  const from = windowFromBlock(g, n);
  const window: number[] = [];
  for (let i = from; i < n; i++) {
    const b = pools.window.lookup(keys[i]!);
    if (b < 0) return null;
    window.push(b);
  }
  return { global: globalRun.slice(0, n), windowFrom: from, window };
}

/**
 * The longest prefix of `keys` every one of `poolSets` can attach (head partitioning: each worker
 * holds a slice of the same blocks, and all must attach the same number), one FoundPrefix per set;
 * null when none is usable.
 */
export function longestCommonPrefix(
  g: KvGeometry,
  poolSets: readonly PrefixPools[],
  keys: readonly string[],
): FoundPrefix[] | null {
  const runs = poolSets.map((p) => p.global.lookupRun(keys));
  for (let n = Math.min(...runs.map((r) => r.length)); n > 0; n--) {
    const found = poolSets.map((p, i) => prefixOf(g, p, keys, runs[i]!, n));
    if (found.every((f) => f !== null)) return found as FoundPrefix[];
  }
  return null;
}

/** The longest prefix of `keys` one cache's pools can attach, or null. */
export function longestPrefix(
  g: KvGeometry,
  pools: PrefixPools,
  keys: readonly string[],
): FoundPrefix | null {
  return longestCommonPrefix(g, [pools], keys)?.[0] ?? null;
}

/**
 * Starts sequence `seqId` (holding no KV) on a found prefix in both pools; all or nothing (the
 * window part is checked before the global part is taken).
 */
export function attachPrefix(pools: PrefixPools, seqId: number, f: FoundPrefix): void {
  if (!pools.window && f.window.length > 0)
    throw new Error("attach: window blocks for a cache without a window pool");
  if (pools.window) {
    if (f.windowFrom + f.window.length !== f.global.length)
      throw new Error(
        `attach: window blocks [${f.windowFrom}, ${f.windowFrom + f.window.length}) do not end where the ${f.global.length} global ones do`,
      );
    pools.window.checkAttach(seqId, f.window);
  }
  pools.global.attach(seqId, f.global);
  pools.window?.attach(seqId, f.window, f.windowFrom);
}

/** Which pools a retain marked (bit flags; RETAIN carries them to a worker). */
export const RETAINED_GLOBAL = 1;
export const RETAINED_WINDOW = 2;

/**
 * The sequence's block `index` is full and written: keep it in the global pool and, while the
 * sequence's window table still holds that index, in the window pool. With a key (model side) a
 * pool whose cache already holds the key keeps nothing new. Returns the pools that kept it
 * (RETAINED_* flags, 0: none). `only` (a worker, keyless): exactly these pools, as the model side
 * decided.
 */
export function retainPrefix(
  pools: PrefixPools,
  seqId: number,
  index: number,
  key?: string,
  only?: number,
): number {
  const w = pools.window;
  const want = (flag: number) => only === undefined || (only & flag) !== 0;
  if (only !== undefined && want(RETAINED_WINDOW) && !w)
    throw new Error("retain: a window block for a cache without a window pool");
  let kept = 0;
  if (want(RETAINED_GLOBAL) && pools.global.retain(seqId, index, key)) kept |= RETAINED_GLOBAL;
  if (w && want(RETAINED_WINDOW)) {
    const held = (w.table(seqId)?.[index] ?? -1) >= 0;
    if (only !== undefined && !held)
      throw new Error(`retain: sequence ${seqId} has no window block at index ${index}`);
    if (held && w.retain(seqId, index, key)) kept |= RETAINED_WINDOW;
  }
  return kept;
}
