// Window layers' KV in a pool of their own (models mixing window and global layers, like Gemma):
// blocks outside the window are freed as a sequence grows, the global layers keep every block,
// attention reads the same keys as with one shared table, and the freed blocks become capacity.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BlockAllocator } from "../../src/attention/block-allocator.js";
import { KvAttention, type KvGeometry, kvBytesPerBlock } from "../../src/attention/kv-attention.js";
import type { AttentionStep } from "../../src/attention/service.js";
import {
  globalBlocksForBudget,
  windowBlocksPerSeq,
  windowPoolBlocks,
} from "../../src/attention/window-blocks.js";
import { kvBytesPerHeadToken } from "../../src/kernels/kv-cache.js";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import { windowGeometry } from "../helpers/window-geometry.js";
import { randomF32, rng } from "../kernels/fixtures.js";

const backend = new ReferenceBackend();

/** Three layers, 0 and 2 within a window of 6, layer 1 global; blocks of 4; steps of up to 4 tokens. */
const geometry: KvGeometry = windowGeometry([true, false, true], 2);

describe("a block table that frees its front", () => {
  test("entries below keepFrom go back to the pool and new ones there take none", () => {
    const a = new BlockAllocator(10, 4);
    assert.ok(a.reserve(1, 12)); // 3 blocks
    assert.equal(a.usedBlocks, 3);
    assert.ok(a.reserve(1, 20, 2)); // entries 0, 1 freed; 3, 4 new
    assert.deepEqual(a.table(1)!.slice(0, 2), [-1, -1]);
    assert.equal(a.blocksHeld(1), 3);
    assert.equal(a.held(1), 5);
    assert.equal(a.usedBlocks, 3);
    // A fresh sequence reserved far along takes only the blocks from keepFrom on.
    assert.equal(a.blocksNeeded(2, 32, 6), 2);
    assert.ok(a.reserve(2, 32, 6));
    assert.equal(a.blocksHeld(2), 2);
    assert.ok(!a.canReserve(3, 24), "6 blocks wanted, 5 free");
    a.release(1);
    a.release(2);
    assert.equal(a.usedBlocks, 0);
    assert.equal(a.freeBlocks, 10);
  });
});

/** A decode step of one token at `pos` for sequence `seq`. */
function decodeStep(seq: number, pos: number): AttentionStep {
  return {
    microBatch: 0,
    nTokens: 1,
    nSeqs: 1,
    seqIds: new Int32Array([seq]),
    seqStart: new Int32Array([0, 1]),
    positions: new Int32Array([pos]),
  };
}

/** A prefill chunk of positions [from, to) for sequence `seq`. */
function chunkStep(seq: number, from: number, to: number): AttentionStep {
  return {
    microBatch: 0,
    nTokens: to - from,
    nSeqs: 1,
    seqIds: new Int32Array([seq]),
    seqStart: new Int32Array([0, to - from]),
    positions: Int32Array.from({ length: to - from }, (_, i) => from + i),
  };
}

describe("KvAttention with the window layers' own pool", () => {
  test("the window pool holds only the blocks inside the window; the global pool holds them all", () => {
    const kv = new KvAttention(backend, geometry, 20, true);
    const win = kv.windowAllocator!;
    assert.ok(win, "a pool of their own");
    assert.equal(win.numBlocks, windowPoolBlocks(geometry, 20));
    assert.equal(kv.caches[0]!.numBlocks, win.numBlocks);
    assert.equal(kv.caches[1]!.numBlocks, 20);
    for (let n = 1; n <= 48; n++) {
      assert.ok(kv.reserve(7, n));
      assert.equal(kv.allocator.blocksHeld(7), Math.ceil(n / 4), `global blocks at ${n}`);
      // The next step's queries are at n - 4 or later; their window keys at n - 4 + 1 - 6 or later.
      const keepFrom = Math.max(0, Math.floor((n - 4 + 1 - 6) / 4));
      assert.equal(win.blocksHeld(7), Math.ceil(n / 4) - keepFrom, `window blocks at ${n}`);
      assert.ok(win.blocksHeld(7) <= windowBlocksPerSeq(geometry));
    }
    assert.equal(win.usedBlocks, 12 - 9, "blocks 0-8 of 12 freed at 48 tokens");
    kv.release(7);
    assert.equal(win.usedBlocks, 0);
    assert.equal(kv.allocator.usedBlocks, 0);
    // Without the split (a prefill instance's cache), every layer shares one table.
    assert.equal(new KvAttention(backend, geometry, 20).windowAllocator, null);
    // Nor is there one where every layer is a window layer (Mistral) or none is.
    assert.equal(
      new KvAttention(backend, { ...geometry, slidingLayers: undefined }, 20, true).windowAllocator,
      null,
    );
  });

  test("attention over a pool that freed its front equals attention over one shared table", () => {
    const split = new KvAttention(backend, geometry, 20, true);
    const shared = new KvAttention(backend, geometry, 20);
    const rand = rng(3);
    const qw = geometry.numHeads * geometry.headDim;
    const kw = geometry.numKvHeads * geometry.headDim;
    // A prompt in chunks of 4, then decoding: the scheduler's reservations, step by step.
    const steps = [chunkStep(1, 0, 4), chunkStep(1, 4, 8), chunkStep(1, 8, 11)];
    for (let p = 11; p < 40; p++) steps.push(decodeStep(1, p));
    for (const step of steps) {
      const n = step.positions[step.nTokens - 1]! + 1;
      assert.ok(split.reserve(1, n) && shared.reserve(1, n));
      split.prepare(step);
      shared.prepare(step);
      for (let l = 0; l < geometry.numLayers; l++) {
        const q = randomF32(step.nTokens * qw, rand);
        const k = randomF32(step.nTokens * kw, rand);
        const v = randomF32(step.nTokens * kw, rand);
        const a = new Float32Array(step.nTokens * qw);
        const b = new Float32Array(step.nTokens * qw);
        split.run(l, step, q, k, v, a);
        shared.run(l, step, q, k, v, b);
        assert.deepEqual(a, b, `layer ${l} at position ${n - 1}`);
      }
    }
    assert.ok(split.windowAllocator!.usedBlocks < split.allocator.usedBlocks);
  });

  test("a step reaching below the freed blocks is refused by name", () => {
    const kv = new KvAttention(backend, geometry, 20, true);
    assert.ok(kv.reserve(2, 30));
    assert.throws(() => kv.prepare(decodeStep(2, 10)), /window starts at 5, in a block already freed/);
  });
});

describe("capacity", () => {
  const long: KvGeometry = {
    ...geometry,
    numLayers: 6,
    slidingLayers: [true, true, true, true, true, false],
    maxContext: 1 << 16,
    maxSeqs: 64,
  };
  const budget = 64 << 20;

  test("the freed window blocks become global blocks, within the same budget", () => {
    const shared = globalBlocksForBudget(long, budget, false);
    const split = globalBlocksForBudget(long, budget, true);
    assert.equal(shared, Math.floor(budget / kvBytesPerBlock(long)));
    assert.ok(split > 4 * shared, `${split} global blocks against ${shared}`);
    const layerBlock = long.numKvHeads * long.blockSize * kvBytesPerHeadToken(long.kvDtype, long.headDim);
    const used = split * layerBlock * 1 + windowPoolBlocks(long, split) * layerBlock * 5;
    assert.ok(used <= budget, `${used} bytes of ${budget}`);
    assert.ok(used > budget - layerBlock, "and the budget is used up");
  });

  test("a budget too small for the window pool's cap splits evenly, as one table would", () => {
    const small = 100 * kvBytesPerBlock(long);
    assert.equal(globalBlocksForBudget(long, small, true), 100);
    assert.equal(windowPoolBlocks(long, 100), Math.min(100, long.maxSeqs * windowBlocksPerSeq(long)));
  });
});
