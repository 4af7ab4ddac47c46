// Golden values for the reference kernels: the oracle itself is checked against hand-computed
// results before the native kernels are compared with it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import { bf16ToF32, f16ToF32 } from "../../src/model/tensor.js";
import { assertClose, emptyCache } from "./fixtures.js";

const ref = new ReferenceBackend();

test("matmul: out = x·Wᵀ + bias for f32 and bf16 weights", () => {
  const out = new Float32Array(4);
  const x = new Float32Array([1, 2, 3, 4, 5, 6]);
  for (const dtype of ["f32", "bf16"] as const) {
    // W = [[1, 0, -1], [0.5, 2, 1]]: all exact in bf16.
    const vals = [1, 0, -1, 0.5, 2, 1];
    const data =
      dtype === "f32"
        ? new Float32Array(vals)
        : new Uint16Array(vals.map((v) => new Uint32Array(new Float32Array([v]).buffer)[0]! >>> 16));
    const w = ref.prepareWeight({ name: "w", dtype, shape: [2, 3], data });
    ref.matmul(out, x, w, 2, new Float32Array([10, 20]));
    assert.deepEqual(Array.from(out), [10 + 1 - 3, 20 + 0.5 + 4 + 3, 10 + 4 - 6, 20 + 2 + 10 + 6]);
  }
});

test("rmsnorm, softmax, logSoftmax, siluMul, add", () => {
  const out = new Float32Array(2);
  ref.rmsnorm(out, new Float32Array([3, 4]), new Float32Array([1, 2]), 1, 2, 0);
  const rms = Math.sqrt(12.5);
  assertClose(out, [3 / rms, (2 * 4) / rms], "rmsnorm");
  const x = new Float32Array([0, Math.log(3)]);
  ref.softmax(x, 1, 2);
  assertClose(x, [0.25, 0.75], "softmax");
  ref.logSoftmax(out, new Float32Array([0, Math.log(3)]), 1, 2);
  assertClose(out, [Math.log(0.25), Math.log(0.75)], "logSoftmax");
  ref.siluMul(out, new Float32Array([0, 2]), new Float32Array([5, 3]), 2);
  assertClose(out, [0, (2 / (1 + Math.exp(-2))) * 3], "siluMul");
  ref.add(out, new Float32Array([1, 2]), new Float32Array([0.5, -2]), 2);
  assert.deepEqual(Array.from(out), [1.5, 0]);
});

test("rope rotates the two halves of each head by the table's angle", () => {
  // headDim 4: pairs (0, 2) and (1, 3); angle table for pos 1 = [a0, a1].
  const a = [1, 0.25];
  const cos = new Float32Array([1, 1, Math.cos(a[0]!), Math.cos(a[1]!)]);
  const sin = new Float32Array([0, 0, Math.sin(a[0]!), Math.sin(a[1]!)]);
  const x = new Float32Array([1, 2, 3, 4]);
  ref.rope(x, new Int32Array([1]), 1, 1, 4, cos, sin);
  const c = cos.slice(2);
  const s = sin.slice(2);
  assertClose(
    x,
    [1 * c[0]! - 3 * s[0]!, 2 * c[1]! - 4 * s[1]!, 3 * c[0]! + 1 * s[0]!, 4 * c[1]! + 2 * s[1]!],
    "rope",
  );
});

test("rope with rotaryDim rotates the first rotaryDim dims of a head, paired within them, and passes the rest", () => {
  // headDim 6, rotaryDim 4: pairs (0, 2) and (1, 3); dims 4 and 5 pass through.
  const a = [1, 0.25];
  const cos = new Float32Array([Math.cos(a[0]!), Math.cos(a[1]!)]);
  const sin = new Float32Array([Math.sin(a[0]!), Math.sin(a[1]!)]);
  const x = new Float32Array([1, 2, 3, 4, 5, 6]);
  ref.rope(x, new Int32Array([0]), 1, 1, 6, cos, sin, 4);
  const [c0, c1] = [cos[0]!, cos[1]!];
  const [s0, s1] = [sin[0]!, sin[1]!];
  assertClose(x, [1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1, 5, 6], "partial rope");
  assert.throws(
    () => ref.rope(x, new Int32Array([0]), 1, 1, 6, cos, sin, 8),
    /rotaryDim must be even and at most headDim \(6\)/,
  );
  assert.throws(() => ref.rope(x, new Int32Array([0]), 1, 1, 6, cos, sin, 3), /rotaryDim must be even/);
});

test("kvWrite stores at block-major slots with round-to-nearest-even narrowing", () => {
  // 2 blocks of 2 slots, 2 kv heads, headDim 1. Slot 3 = block 1, offset 1.
  for (const dtype of ["f32", "bf16", "f16"] as const) {
    const cache = emptyCache(dtype, 2, 2, 2, 1);
    const halfway = 1 + 2 ** -8; // halfway between two bf16 values: rounds to even (1.0)
    ref.kvWrite(cache, new Float32Array([halfway, -3]), new Float32Array([0.1, 7]), new Int32Array([3]), 1);
    const read = (d: ArrayLike<number>, i: number) =>
      dtype === "f32" ? d[i]! : dtype === "bf16" ? bf16ToF32(d[i]!) : f16ToF32(d[i]!);
    // element (block 1, head h, offset 1) at ((1 * 2 + h) * 2 + 1)
    assert.equal(read(cache.k, 5), dtype === "bf16" ? 1 : dtype === "f16" ? halfway : Math.fround(halfway));
    assert.equal(read(cache.k, 7), -3);
    assert.equal(read(cache.v, 7), 7);
    for (const i of [0, 1, 2, 3, 4, 6]) assert.equal(cache.k[i], 0, `${dtype} slot ${i} untouched`);
    // A negative slot is padding: nothing is written.
    ref.kvWrite(cache, new Float32Array([9, 9]), new Float32Array([9, 9]), new Int32Array([-1]), 1);
    assert.equal(read(cache.k, 7), -3);
  }
});

test("attention: softmax-weighted values, lse, GQA head mapping and empty ranges", () => {
  // 1 block of 4 slots, 2 kv heads, headDim 2; 4 query heads: heads 0,1 -> kv 0, heads 2,3 -> kv 1.
  const cache = emptyCache("f32", 1, 4, 2, 2);
  const k = new Float32Array([1, 0, 1, 0, 0, 1, 0, 1]); // token0: kv0 [1,0], kv1 [1,0]; token1: [0,1], [0,1]
  const v = new Float32Array([1, 2, 10, 20, 3, 4, 30, 40]);
  ref.kvWrite(cache, k, v, new Int32Array([0, 1]), 2);
  const q = new Float32Array([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
  const out = new Float32Array(16);
  const lse = new Float32Array(8);
  ref.attention({
    out,
    q,
    cache,
    blockTables: new Int32Array([0]),
    maxBlocksPerSeq: 1,
    qSeq: new Int32Array([0, 0]),
    ctxStart: new Int32Array([0, 1]),
    ctxEnd: new Int32Array([2, 1]),
    nTokens: 2,
    nHeads: 4,
    scale: 1,
    lse,
  });
  const p0 = Math.E / (Math.E + 1);
  const p1 = 1 / (Math.E + 1);
  assertClose(out.subarray(0, 2), [p0 * 1 + p1 * 3, p0 * 2 + p1 * 4], "head 0");
  assertClose(out.subarray(2, 4), [2, 3], "head 1 (q = 0: uniform)");
  assertClose(out.subarray(4, 6), [p0 * 10 + p1 * 30, p0 * 20 + p1 * 40], "head 2 uses kv head 1");
  assertClose(
    lse.subarray(0, 4),
    [Math.log(Math.E + 1), Math.log(2), Math.log(Math.E + 1), Math.log(2)],
    "lse",
  );
  assert.deepEqual(Array.from(out.subarray(8)), new Array(8).fill(0), "empty range gives zeros");
  assert.deepEqual(Array.from(lse.subarray(4)), new Array(4).fill(Number.NEGATIVE_INFINITY));
});

test("mergeAttention weights each part by e^lse and ignores empty parts", () => {
  const outA = new Float32Array([1, 1, 5, 5, 0, 0]);
  const lseA = new Float32Array([0, Number.NEGATIVE_INFINITY, 2]);
  const outB = new Float32Array([3, 3, 7, 7, 9, 9]);
  const lseB = new Float32Array([Math.log(3), 1, Number.NEGATIVE_INFINITY]);
  ref.mergeAttention(outA, lseA, outB, lseB, 3, 1, 2);
  assertClose(outA, [(1 * 1 + 3 * 3) / 4, (1 * 1 + 3 * 3) / 4, 7, 7, 0, 0], "merged out");
  assertClose(lseA, [Math.log(4), 1, 2], "merged lse");
});

test("reference errors name the argument", () => {
  assert.throws(() => ref.add(new Float32Array(2), new Float32Array(3), new Float32Array(3), 3), {
    name: "TypeError",
    message: /add: out has 2 elements/,
  });
  const table = { name: "embed", dtype: "f32" as const, shape: [4, 2], data: new Float32Array(8) };
  assert.throws(() => ref.embedding(new Float32Array(2), table, new Int32Array([4]), 1), {
    name: "RangeError",
    message: /tokens\[0\] = 4/,
  });
});
