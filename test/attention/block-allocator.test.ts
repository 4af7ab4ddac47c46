import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BlockAllocator } from "../../src/attention/block-allocator.js";

describe("block allocator: prefix caching", () => {
  it("keeps a retained block with its key after its sequence lets go, and counts it free", () => {
    const a = new BlockAllocator(4, 16);
    assert.ok(a.reserve(1, 40)); // 3 blocks
    const t = [...a.table(1)!];
    assert.equal(a.retain(1, 0, "k0"), true);
    assert.equal(a.retain(1, 1, "k1"), true);
    assert.equal(a.retain(1, 1, "k1'"), false, "a block is retained once");
    assert.equal(a.cachedBlocks, 2);
    a.release(1);
    assert.equal(a.freeBlocks, 4, "unreferenced cached blocks count as free");
    assert.equal(a.usedBlocks, 0);
    assert.deepEqual(a.lookupRun(["k0", "k1", "k2"]), [t[0], t[1]]);
    assert.deepEqual(a.lookupRun(["k1"]), [t[1]], "lookupRun follows the keys it is given");
    assert.deepEqual(a.lookupRun(["x", "k1"]), [], "a run stops at its first miss");
  });

  it("shares a block between sequences and frees it only after the last one", () => {
    const a = new BlockAllocator(3, 16);
    a.reserve(1, 16);
    a.retain(1, 0, "k0");
    const b = a.table(1)![0]!;
    a.attach(2, [b]);
    assert.ok(a.reserve(2, 20)); // one more block for sequence 2
    assert.equal(a.usedBlocks, 2);
    a.release(1);
    assert.equal(a.usedBlocks, 2, "still held by sequence 2");
    assert.equal(a.lookup("k0"), b);
    a.release(2);
    assert.equal(a.usedBlocks, 0);
    assert.equal(a.lookup("k0"), b, "kept for reuse");
  });

  it("takes never-used blocks first, then evicts retained ones from a chain's end", () => {
    const a = new BlockAllocator(4, 16);
    a.reserve(1, 48);
    for (let i = 0; i < 3; i++) a.retain(1, i, `k${i}`);
    a.release(1);
    assert.ok(a.reserve(2, 16));
    assert.equal(a.evictions, 0, "the never-used block went first");
    assert.ok(a.reserve(3, 16));
    assert.equal(a.evictions, 1);
    assert.equal(a.lookup("k2"), -1, "the chain's last block went first");
    assert.deepEqual(a.lookupRun(["k0", "k1", "k2"]).length, 2, "what stays is still a prefix");
    assert.equal(a.canReserve(4, 48), false);
    assert.ok(a.reserve(4, 32));
    assert.equal(a.cachedBlocks, 0);
    assert.equal(a.freeBlocks, 0);
  });

  it("an attached block leaves the eviction list, so admission cannot take it from under its reader", () => {
    const a = new BlockAllocator(2, 16);
    a.reserve(1, 16);
    a.retain(1, 0, "k0");
    a.release(1);
    a.attach(2, a.lookupRun(["k0"]));
    assert.equal(a.freeBlocks, 1);
    assert.ok(a.reserve(3, 16));
    assert.equal(a.reserve(4, 16), false);
    assert.equal(a.lookup("k0"), a.table(2)![0]);
  });

  it("refuses a block that holds no cached prefix, a sequence that holds blocks, and a retain past the table", () => {
    const a = new BlockAllocator(4, 16);
    a.reserve(1, 16);
    assert.throws(() => a.attach(2, [a.table(1)![0]!]), /holds no cached prefix/);
    assert.throws(() => a.attach(2, [99]), /block 99 holds no cached prefix/);
    a.retain(1, 0, "k0");
    assert.throws(() => a.attach(1, [a.table(1)![0]!]), /already holds KV blocks/);
    assert.throws(() => a.retain(1, 5), /no block at index 5/);
    assert.equal(a.held(2), 0, "a refused attach changes nothing");
  });

  it("a worker replaying the mirror's operations without keys ends with the same tables and counts", () => {
    // The model side decides (lookups, retains) and the worker is told ATTACH / RETAIN: random
    // traffic must keep both identical, evictions included.
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 16) % n;
    };
    const mirror = new BlockAllocator(10, 4);
    const worker = new BlockAllocator(10, 4);
    const live = new Map<number, number>(); // seq -> tokens reserved
    let next = 1;
    let attached = 0;
    for (let step = 0; step < 3000; step++) {
      const op = rand(4);
      if (op === 0 && live.size < 6) {
        const seq = next++;
        const prefix = rand(5);
        const keys = Array.from({ length: prefix }, (_, i) => `p${rand(2)}-${i}`);
        const blocks = mirror.lookupRun(keys);
        mirror.attach(seq, blocks);
        attached += blocks.length;
        worker.attach(seq, blocks);
        live.set(seq, blocks.length * 4);
      } else if (op === 1 && live.size > 0) {
        const seq = [...live.keys()][rand(live.size)]!;
        const n = live.get(seq)! + 1 + rand(9);
        if (mirror.reserve(seq, n)) {
          assert.ok(worker.reserve(seq, n));
          live.set(seq, n);
        } else assert.equal(worker.canReserve(seq, n), false);
      } else if (op === 2 && live.size > 0) {
        const seq = [...live.keys()][rand(live.size)]!;
        const full = Math.floor(live.get(seq)! / 4);
        if (full > 0) {
          const i = rand(full);
          if (mirror.retain(seq, i, `p${rand(2)}-${i}`)) worker.retain(seq, i);
        }
      } else if (op === 3 && live.size > 0) {
        const seq = [...live.keys()][rand(live.size)]!;
        mirror.release(seq);
        worker.release(seq);
        live.delete(seq);
      }
      assert.equal(worker.freeBlocks, mirror.freeBlocks);
      assert.equal(worker.cachedBlocks, mirror.cachedBlocks);
    }
    for (const seq of live.keys()) assert.deepEqual(worker.table(seq), mirror.table(seq));
    assert.ok(mirror.evictions > 0, "the traffic evicted cached blocks");
    assert.ok(attached > 0, "the traffic attached cached blocks");
    assert.equal(worker.evictions, mirror.evictions);
  });
});
