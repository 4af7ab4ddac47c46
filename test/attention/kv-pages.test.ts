// A KV pool's pages mapped ahead of first use (KvPagePopulator): reservations that reach blocks
// never used before populate them, at least a chunk at a time, in every layer's K, V (and int8
// scales) of their pool; blocks taken again after a release populate nothing; a backend that
// cannot populate is left alone.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BlockAllocator } from "../../src/attention/block-allocator.js";
import { KvAttention, type KvGeometry } from "../../src/attention/kv-attention.js";
import { KV_POPULATE_CHUNK_BYTES, KvPagePopulator } from "../../src/attention/kv-pages.js";
import type { KvData } from "../../src/kernels/backend.js";
import { allocKvLayer } from "../../src/kernels/kv-cache.js";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import { windowGeometry } from "../helpers/window-geometry.js";

/** A backend recording each populatePages call as [array, byteOffset, byteLength]. */
function recording() {
  const calls: [KvData, number, number][] = [];
  const populatePages = (x: KvData, o: number, n: number) => {
    calls.push([x, o, n]);
    return n;
  };
  return { calls, populatePages };
}

describe("block allocator: the high-water mark", () => {
  test("rises with never-used blocks and stays when freed blocks are taken again", () => {
    const a = new BlockAllocator(8, 16);
    assert.equal(a.highWater, 0);
    assert.ok(a.reserve(1, 40)); // blocks 0-2
    assert.equal(a.highWater, 3);
    a.release(1);
    assert.ok(a.reserve(2, 48)); // the same three again
    assert.equal(a.highWater, 3);
    assert.ok(a.reserve(2, 64)); // and block 3
    assert.equal(a.highWater, 4);
  });
});

describe("KvPagePopulator", () => {
  test("populates each array of each layer for the blocks up to the mark, at least a chunk at a time", () => {
    const numBlocks = 64;
    const caches = [0, 1].map(() => allocKvLayer("int8", numBlocks, 16, 2, 64));
    const b = recording();
    const bytesPerBlock = 2 * (2 * 16 * 64) + 2 * (2 * 16 * 4); // K, V, and their scales, per layer
    const pool = { numBlocks, highWater: 0 };
    const pop = new KvPagePopulator(b, caches, pool);
    const chunk = Math.floor(KV_POPULATE_CHUNK_BYTES / (2 * bytesPerBlock));
    assert.ok(chunk >= numBlocks, "these small layers fit in one chunk");
    pool.highWater = 3;
    pop.cover();
    assert.equal(pop.populatedBlocks, numBlocks, "a whole chunk, bounded by the pool");
    assert.equal(b.calls.length, 2 * 4);
    for (const c of caches)
      for (const a of [c.k, c.v, c.kScale!, c.vScale!]) {
        const call = b.calls.find(([x]) => x === a);
        assert.ok(call, "every array of every layer");
        assert.deepEqual(call.slice(1), [0, a.byteLength]);
      }
    pool.highWater = numBlocks;
    pop.cover();
    assert.equal(b.calls.length, 8, "nothing more to populate");
  });

  test("a large pool goes a chunk at a time, from where it stopped", () => {
    const blockBytes = 2 * 16 * 8 * 128 * 2; // bf16 K and V of a block: 64 KiB
    const numBlocks = Math.ceil((3 * KV_POPULATE_CHUNK_BYTES) / blockBytes);
    const cache = allocKvLayer("bf16", numBlocks, 16, 8, 128);
    const b = recording();
    const pool = { numBlocks, highWater: 1 };
    const pop = new KvPagePopulator(b, [cache], pool);
    const chunk = KV_POPULATE_CHUNK_BYTES / blockBytes;
    pop.cover();
    assert.equal(pop.populatedBlocks, chunk);
    pool.highWater = chunk;
    pop.cover();
    assert.equal(b.calls.length, 2, "within the populated blocks: no call");
    pool.highWater = chunk + 1;
    pop.cover();
    assert.equal(pop.populatedBlocks, 2 * chunk);
    const half = blockBytes / 2;
    assert.deepEqual(
      b.calls.slice(2).map(([, o, n]) => [o, n]),
      [
        [chunk * half, chunk * half],
        [chunk * half, chunk * half],
      ],
    );
    pool.highWater = numBlocks;
    pop.cover();
    assert.equal(pop.populatedBlocks, numBlocks, "the last chunk stops at the pool's end");
  });

  test("a backend without populatePages changes nothing", () => {
    const pop = new KvPagePopulator({}, [allocKvLayer("f32", 4, 16, 1, 8)], { numBlocks: 4, highWater: 4 });
    pop.cover();
    assert.equal(pop.populatedBlocks, 0);
  });
});

describe("KvAttention populates as reservations reach new blocks", () => {
  // Layers 0 and 2 within the window (a pool of their own), layer 1 global.
  const geometry: KvGeometry = windowGeometry([true, false, true], 2);

  test("both pools' layers, once each", () => {
    const b = recording();
    const backend = Object.assign(new ReferenceBackend(), { populatePages: b.populatePages });
    const kv = new KvAttention(backend, geometry, 20, true);
    assert.equal(b.calls.length, 0, "nothing before the first reservation");
    assert.ok(kv.reserve(1, 8));
    // Global pool: layer 1; window pool: layers 0 and 2; K and V each, whole pools (small).
    assert.equal(b.calls.length, 6);
    const arrays = new Set(b.calls.map(([x]) => x));
    for (const c of kv.caches) assert.ok(arrays.has(c.k) && arrays.has(c.v));
    for (const [x, o, n] of b.calls) assert.deepEqual([o, n], [0, x.byteLength]);
    assert.ok(kv.reserve(1, 40));
    assert.equal(b.calls.length, 6, "already populated");
  });

  test("a failed reservation populates nothing", () => {
    const b = recording();
    const backend = Object.assign(new ReferenceBackend(), { populatePages: b.populatePages });
    const kv = new KvAttention(backend, { ...geometry, slidingLayers: undefined, slidingWindow: null }, 2);
    assert.equal(kv.reserve(1, 64), false);
    assert.equal(b.calls.length, 0);
  });
});
