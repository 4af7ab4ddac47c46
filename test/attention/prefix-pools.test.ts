import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BlockAllocator } from "../../src/attention/block-allocator.js";
import type { KvGeometry } from "../../src/attention/kv-attention.js";
import {
  attachPrefix,
  longestCommonPrefix,
  longestPrefix,
  type PrefixPools,
  RETAINED_GLOBAL,
  RETAINED_WINDOW,
  retainPrefix,
  windowFromBlock,
} from "../../src/attention/prefix-pools.js";
import { maxAttachBlocks } from "../../src/attention/remote-service.js";
import { reserveInPools } from "../../src/attention/window-blocks.js";
import { DEFAULT_LIMITS } from "../../src/transport/limits.js";
import { windowGeometry } from "../helpers/window-geometry.js";

// Blocks of 4, a window of 6, steps of at most 4 tokens: a step reaches back at most 9 keys.
const g: KvGeometry = windowGeometry([true, false], 4);
const keys = Array.from({ length: 8 }, (_, i) => `k${i}`);

function pools(windowBlocks = 8): PrefixPools {
  return { global: new BlockAllocator(16, 4), window: new BlockAllocator(windowBlocks, 4) };
}

/** Sequence `seq` computes `tokens` in steps of 4, publishing each block as it fills (as the scheduler does). */
function compute(p: PrefixPools, seq: number, tokens: number, from = 0): void {
  for (let n = from + 4; n <= tokens; n += 4) {
    assert.ok(reserveInPools(g, p.global, p.window, seq, n, 0));
    retainPrefix(p, seq, n / 4 - 1, keys[n / 4 - 1]);
  }
}

describe("prefix caching over a global and a window pool", () => {
  it("finds a prefix with the window blocks its next step reads, and attaches both", () => {
    const p = pools();
    compute(p, 1, 24); // 6 blocks; the window pool has freed the first ones as the window slid
    assert.ok(
      p
        .window!.table(1)!
        .slice(0, 3)
        .every((b) => b === -1),
      "early window blocks freed",
    );
    p.global.release(1);
    p.window!.release(1);
    // A step after 6 blocks (24 tokens) reads window keys from 24 + 1 - 6 = 19: blocks 4 and 5.
    assert.equal(windowFromBlock(g, 6), 4);
    const f = longestPrefix(g, p, keys)!;
    assert.equal(f.global.length, 6);
    assert.equal(f.windowFrom, 4);
    assert.deepEqual(f.window, [p.window!.lookup("k4"), p.window!.lookup("k5")]);
    attachPrefix(p, 2, f);
    assert.deepEqual(p.global.table(2), f.global);
    assert.deepEqual(p.window!.table(2), [-1, -1, -1, -1, ...f.window]);
    // The sequence goes on from there under the same reservation rule.
    assert.ok(reserveInPools(g, p.global, p.window, 2, 28, 0));
    assert.equal(p.window!.blocksHeld(2), 3);
  });

  it("falls back to a shorter prefix when the window blocks near the end were evicted", () => {
    const p = pools(4);
    compute(p, 1, 24);
    p.global.release(1);
    p.window!.release(1); // window blocks 3, 4, 5 become evictable (5 first, as a chain's end)
    // Another sequence takes 2 window blocks: evicts two of the unreferenced retained ones.
    assert.ok(p.window!.reserve(9, 8));
    // Evicted least recently let go first: block 2's, then block 5's (released first, the chain's end).
    assert.equal(p.window!.lookup("k5"), -1);
    assert.ok(p.window!.lookup("k3") >= 0 && p.window!.lookup("k4") >= 0);
    const f = longestPrefix(g, p, keys)!;
    // 5 blocks: a step after 20 tokens reads window keys from 15 on, blocks 3 and 4, both still cached.
    assert.equal(f.global.length, 5);
    assert.equal(f.windowFrom, 3);
    assert.deepEqual(f.window, [p.window!.lookup("k3"), p.window!.lookup("k4")]);
  });

  it("gives every worker under head partitioning the longest prefix all of them can attach", () => {
    const a = pools();
    const b = pools();
    compute(a, 1, 24);
    compute(b, 1, 20);
    for (const p of [a, b]) {
      p.global.release(1);
      p.window!.release(1);
    }
    const found = longestCommonPrefix(g, [a, b], keys)!;
    assert.deepEqual(
      found.map((f) => f.global.length),
      [5, 5],
    );
    assert.deepEqual(
      found.map((f) => f.windowFrom),
      [3, 3],
    );
    assert.equal(longestCommonPrefix(g, [a, pools()], keys), null, "a worker with nothing: no prefix");
  });

  it("retains in the pools still holding the block, and a keyless worker applies exactly what it is told", () => {
    const p = pools();
    compute(p, 1, 12);
    const w = pools();
    // Not what the model side decided: the worker must refuse, not guess.
    assert.ok(reserveInPools(g, w.global, w.window, 1, 12, 0));
    assert.equal(retainPrefix(w, 1, 2, undefined, RETAINED_GLOBAL | RETAINED_WINDOW), 3);
    assert.equal(retainPrefix(w, 1, 2, undefined, RETAINED_GLOBAL), 0, "already retained");
    // The window table no longer holds block 0 once the window slid past it.
    assert.ok(reserveInPools(g, p.global, p.window, 1, 24, 0));
    assert.equal(p.window!.table(1)![0], -1);
    assert.equal(retainPrefix(p, 1, 0, "other"), 0, "block 0 kept already; none in the window pool");
    assert.ok(reserveInPools(g, w.global, w.window, 1, 24, 0));
    assert.throws(() => retainPrefix(w, 1, 0, undefined, RETAINED_WINDOW), /no window block at index 0/);
    const flat: PrefixPools = { global: new BlockAllocator(4, 4), window: null };
    flat.global.reserve(1, 4);
    assert.throws(() => retainPrefix(flat, 1, 0, undefined, RETAINED_WINDOW), /without a window pool/);
  });

  it("attaches all or nothing", () => {
    const p = pools();
    compute(p, 1, 24);
    const f = longestPrefix(g, p, keys)!;
    const bad = { ...f, window: [...f.window.slice(0, 1), 7] };
    assert.throws(() => attachPrefix(p, 3, bad), /holds no cached prefix/);
    assert.equal(p.global.held(3), 0, "nothing taken from the global pool either");
    assert.throws(() => attachPrefix(p, 3, { ...f, windowFrom: 3 }), /do not end where/);
    assert.throws(() => attachPrefix({ global: p.global, window: null }, 3, f), /without a window pool/);
    assert.equal(p.global.held(3), 0);
  });
});

describe("an ATTACH's size", () => {
  it("keeps the blocks and the window part within a frame's ints, or attaches nothing", () => {
    const ints = (geometry: KvGeometry) => {
      const n = maxAttachBlocks(geometry);
      return 3 + n + (n - windowFromBlock(geometry, n));
    };
    assert.equal(maxAttachBlocks({ ...g, slidingWindow: null }), DEFAULT_LIMITS.maxInts - 3);
    for (const [window, blockSize] of [
      [6, 4],
      [4096, 16],
      [1024, 64],
      [128, 1],
    ])
      assert.ok(ints({ ...g, slidingWindow: window!, blockSize: blockSize! }) <= DEFAULT_LIMITS.maxInts);
    assert.ok(maxAttachBlocks({ ...g, slidingWindow: 1 << 20, blockSize: 16 }) < 1, "nothing fits");
  });
});
