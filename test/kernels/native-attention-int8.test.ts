// The int8 KV cache: kvWrite's quantization and paged attention reading int8 directly, native (every
// variant this CPU runs) against the reference backend, over odd head sizes, GQA and MHA, several
// batch sizes and contexts; the quantization error against an f32 cache; and the errors a
// malformed int8 cache gets.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KernelBackend, KvLayerCache } from "../../src/kernels/backend.js";
import { kvKeyIndex, kvValueIndex, parseKvDtype } from "../../src/kernels/kv-cache.js";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import {
  type AttentionShape,
  assertClose,
  emptyCache,
  fillCache,
  type PagedLayout,
  pagedAttention,
  pagedLayout,
  queryRanges,
  randomF32,
  rng,
} from "./fixtures.js";
import { forEachVariant, nativeKernels } from "./native-setup.js";

const ref = new ReferenceBackend();
const native = nativeKernels();

interface Case extends AttentionShape {
  seqLens: number[];
}

const CASES: Case[] = [
  { nHeads: 8, nKvHeads: 2, headDim: 128, blockSize: 16, seqLens: [300, 17, 1] }, // GQA 4, the fast path's shape
  { nHeads: 6, nKvHeads: 2, headDim: 20, blockSize: 16, seqLens: [37, 70, 6] }, // group 3, odd head size
  { nHeads: 3, nKvHeads: 3, headDim: 5, blockSize: 4, seqLens: [9, 2, 23] }, // MHA, tiny odd head, one group a block
  { nHeads: 28, nKvHeads: 4, headDim: 72, blockSize: 32, seqLens: [130, 64] }, // group 7
  { nHeads: 4, nKvHeads: 4, headDim: 130, blockSize: 8, seqLens: [2100, 5] }, // MHA, long: split over threads
  { nHeads: 2, nKvHeads: 1, headDim: 256, blockSize: 16, seqLens: [45] }, // group 2, wide head
  { nHeads: 8, nKvHeads: 2, headDim: 8, blockSize: 8, seqLens: [150, 3] }, // stories260K's heads: half a 64-byte column
  { nHeads: 4, nKvHeads: 4, headDim: 12, blockSize: 4, seqLens: [33, 70] }, // a quad short of 16: zmm paths only
];

/** Query tokens: a decode per sequence, a causal prefill chunk, a sub-range starting mid-group, an empty range. */
function queries(layout: PagedLayout) {
  return queryRanges((add) => {
    layout.seqLens.forEach((len, s) => {
      add(s, 0, len);
    });
    const last = layout.seqLens.length - 1;
    const len = layout.seqLens[last]!;
    for (let p = Math.max(0, len - 5); p < len; p++) add(last, 0, p + 1);
    add(0, Math.min(3, layout.seqLens[0]! - 1), layout.seqLens[0]!);
    add(0, 1, 1);
  });
}

function setup(c: Case, seed: number) {
  const layout = pagedLayout(c.seqLens, c.blockSize, rng(seed));
  const make = (b: KernelBackend, dtype: "int8" | "f32") => {
    const cache = emptyCache(dtype, layout.numBlocks, c.blockSize, c.nKvHeads, c.headDim);
    fillCache(b, cache, layout, rng(seed + 1));
    return cache;
  };
  const qs = queries(layout);
  const q = randomF32(qs.n * c.nHeads * c.headDim, rng(seed + 2), 2);
  return { layout, ref8: make(ref, "int8"), nat8: make(native, "int8"), refF32: make(ref, "f32"), q, ...qs };
}

function run(b: KernelBackend, cache: KvLayerCache, s: ReturnType<typeof setup>, c: Case) {
  return pagedAttention(b, cache, s, c.nHeads, c.headDim);
}

test("kvWrite quantizes each (token, KV head) row as the reference does: same codes, same scales", () => {
  for (const [ci, c] of CASES.entries()) {
    const s = setup(c, 10 + ci);
    assert.deepEqual(s.nat8.kScale, s.ref8.kScale, `K scales, case ${ci}`);
    assert.deepEqual(s.nat8.vScale, s.ref8.vScale, `V scales, case ${ci}`);
    assert.deepEqual(s.nat8.k, s.ref8.k, `K codes, case ${ci}`);
    assert.deepEqual(s.nat8.v, s.ref8.v, `V codes, case ${ci}`);
  }
});

test("an int8 row is its f32 row within half a step (absmax / 254), K and V in the interleaved layouts", () => {
  const c = CASES[1]!;
  const s = setup(c, 30);
  const rows = s.layout.numBlocks * c.nKvHeads * c.blockSize;
  let checked = 0;
  for (let row = 0; row < rows; row++) {
    const ks = s.ref8.kScale![row]!;
    const vs = s.ref8.vScale![row]!;
    if (ks === 0) continue; // a slot nobody wrote
    for (let i = 0; i < c.headDim; i++) {
      const k = (s.refF32.k as Float32Array)[row * c.headDim + i]!;
      const v = (s.refF32.v as Float32Array)[row * c.headDim + i]!;
      const kAt = kvKeyIndex("int8", row, c.headDim, i);
      assert.ok(Math.abs((s.ref8.k as Int8Array)[kAt]! * ks - k) <= ks / 2 + 1e-7, "K");
      const at = kvValueIndex("int8", row, c.headDim, i);
      assert.ok(Math.abs((s.ref8.v as Int8Array)[at]! * vs - v) <= vs / 2 + 1e-7, "V");
    }
    checked++;
  }
  assert.ok(checked >= 113, `${checked} rows checked`);
});

test("the int8 layouts: K by quads of elements token by token, V element by element, each group in its own 4 rows", () => {
  // headDim 6: quads of 4 and 2 elements. The token at row 5 (lane 1 of the group at row 4).
  const d = 6;
  const base = 4 * d;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((i) => kvKeyIndex("int8", 5, d, i) - base),
    [4, 5, 6, 7, 16 + 2, 16 + 3],
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((i) => kvValueIndex("int8", 5, d, i) - base),
    [1, 5, 9, 13, 17, 21],
  );
  // Every element of a group's four tokens has its own place within the group's 4 · headDim.
  for (const hd of [5, 6, 7, 8, 20, 130]) {
    const seen = new Set<number>();
    for (let row = 0; row < 4; row++) for (let i = 0; i < hd; i++) seen.add(kvKeyIndex("int8", row, hd, i));
    assert.equal(seen.size, 4 * hd, `K, headDim ${hd}`);
    assert.ok(Math.max(...seen) === 4 * hd - 1 && Math.min(...seen) === 0, `K range, headDim ${hd}`);
  }
  assert.equal(kvKeyIndex("f32", 5, d, 3), 5 * d + 3);
});

test("a padding slot (-1) writes nothing into an int8 cache", () => {
  const c = CASES[1]!;
  const s = setup(c, 40);
  const before = [s.nat8.k, s.nat8.v, s.nat8.kScale!, s.nat8.vScale!].map((a) =>
    Uint8Array.from(new Uint8Array(a.buffer)),
  );
  const w = c.nKvHeads * c.headDim;
  native.kvWrite(s.nat8, randomF32(w, rng(1)), randomF32(w, rng(2)), new Int32Array([-1]), 1);
  const after = [s.nat8.k, s.nat8.v, s.nat8.kScale!, s.nat8.vScale!].map((a) => new Uint8Array(a.buffer));
  assert.deepEqual(after, before);
});

test("int8 attention matches the reference on the same cache (every variant, GQA/MHA, odd heads, long contexts)", () => {
  const ran = new Set<string>();
  for (const [ci, c] of CASES.entries()) {
    const s = setup(c, 100 + ci);
    const expected = run(ref, s.ref8, s, c);
    for (const threads of [1, 2]) {
      native.setThreads(threads);
      forEachVariant(
        native,
        (v) => {
          const got = run(native, s.nat8, s, c);
          const what = `${v} ${threads}t heads ${c.nHeads}/${c.nKvHeads} d${c.headDim} bs${c.blockSize}`;
          assertClose(got.out, expected.out, `out ${what}`, INT8_KERNEL_RTOL);
          assertClose(got.lse, expected.lse, `lse ${what}`, INT8_KERNEL_RTOL);
          ran.add(`${v} (${native.info().int8Attention})`);
        },
        { emulated: true },
      );
    }
    const last = run(native, s.nat8, s, c); // the empty range: zeros and -Infinity
    const row = (s.n - 1) * c.nHeads;
    assert.equal(last.lse[row], Number.NEGATIVE_INFINITY);
    assert.equal(last.out[row * c.headDim], 0);
  }
  native.setThreads(2);
  console.log(`int8 attention variants tested (path): ${[...ran].join(", ")}`);
  // Every variant ran, each on the byte-product path its CPU has: AVX-512 VNNI for the AVX-512
  // builds (amxbf16 is one: AMX on top of AVX-512-BF16), AVX-VNNI for the AVX2 one, vpmaddubsw for
  // either where the CPU has no VNNI (and for avx512-novnni and avx2-novnni, which stand in for
  // such CPUs), and widening on the portable build.
  const cpu = new Set(native.info().cpu);
  const path = (v: string) =>
    v.endsWith("-novnni")
      ? "maddubs"
      : v.startsWith("avx512") || v.startsWith("amx")
        ? cpu.has("avx512vnni")
          ? "avx512vnni"
          : "maddubs"
        : v === "avx2"
          ? cpu.has("avxvnni")
            ? "avxvnni"
            : "maddubs"
          : "widen";
  const { supported, emulated } = native.info();
  assert.deepEqual([...ran].sort(), [...supported, ...emulated].map((v) => `${v} (${path(v)})`).sort());
  if (cpu.has("avxvnni"))
    assert.ok(emulated.includes("avx2-novnni"), "avx2-novnni stands in for AVX2 without VNNI");
});

test("int8 attention with every byte at its extreme: no product pair saturates on any path", () => {
  // Every K element ±127 with the query's signs, every V element 127: each 4-byte dot product is
  // 4 · 127², every key gets the same score, so every probability is the step's largest and rounds
  // to its largest byte. vpmaddubsw sums products in pairs into saturating 16-bit lanes: with 8-bit
  // probabilities (255 · 127 twice) or a sign-flipped K (255 · 127) the sums would clip at 32,767
  // and the output fall short of V's row; the output must be V's row exactly, up to rounding.
  const nHeads = 8,
    nKvHeads = 2,
    headDim = 128,
    blockSize = 16;
  const layout = pagedLayout([200, 37], blockSize, rng(7));
  const width = nKvHeads * headDim;
  const sign = (i: number) => ((i * 7) % 3 === 0 ? -1 : 1);
  const caches = [native, ref].map((b) => {
    const cache = emptyCache("int8", layout.numBlocks, blockSize, nKvHeads, headDim);
    layout.seqLens.forEach((len, s) => {
      const k = new Float32Array(len * width).map((_, i) => 3 * sign(i % headDim));
      const v = new Float32Array(len * width).fill(2);
      const slots = new Int32Array(len).map((_, p) => layout.slot(s, p));
      b.kvWrite(cache, k, v, slots, len);
    });
    return cache;
  });
  const qs = queryRanges((add) => {
    add(0, 0, 200);
    add(1, 0, 37);
  });
  const q = new Float32Array(qs.n * nHeads * headDim).map((_, i) => 0.5 * sign(i % headDim));
  const args = { ...qs, q, layout };
  const expected = pagedAttention(ref, caches[1]!, args, nHeads, headDim);
  for (const x of expected.out)
    assert.ok(Math.abs(x - 2) < 1e-5, `reference: the mean of V rows of 2, got ${x}`);
  forEachVariant(
    native,
    (v) => {
      const got = pagedAttention(native, caches[0]!, args, nHeads, headDim);
      assertClose(got.out, expected.out, `out ${v} (${native.info().int8Attention})`, 1e-5);
      assertClose(got.lse, expected.lse, `lse ${v} (${native.info().int8Attention})`, 1e-5);
    },
    { emulated: true },
  );
});

test("the byte-product paths round each query element half to even, in the vector body and in the tail", () => {
  // Two keys, each a unit row (code 127, scale 1/127) on element i0 or i1, and values e0, e1: the
  // output is the pair of probabilities, whose ratio is 2^(q8[i1] − q8[i0]) with the softmax scale
  // ln 2 and the query's largest element 127 (so its scale is exactly 1 and each q8 is q rounded).
  // Ties (±x.5) tell the rounding apart: half to even gives 2 and 4 for 2.5 and 3.5 (ratio 4), half
  // away from zero or truncation ratio 2. head_dim 24 (the 256-bit path needs a multiple of 8):
  // on 512-bit vectors elements 0–15 in the vector loop, 16–23 after it.
  const D = 24;
  const cache = emptyCache("int8", 1, 4, 1, D);
  const cases: [number, number, number, number][] = [
    [0, 1, 2.5, 3.5],
    [17, 18, 2.5, 3.5],
    [3, 19, -2.5, -1.5],
    [16, 2, 0.5, -0.5],
  ];
  const halfEven = (x: number) => {
    const f = Math.floor(x);
    const d = x - f;
    return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
  };
  forEachVariant(native, (variant) => {
    const path = native.info().int8Attention;
    for (const [i0, i1, x0, x1] of cases) {
      const k = new Float32Array(2 * D);
      k[i0] = 1;
      k[D + i1] = 1;
      const v = new Float32Array(2 * D);
      v[0] = 1;
      v[D + 1] = 1;
      native.kvWrite(cache, k, v, new Int32Array([0, 1]), 2);
      const q = new Float32Array(D);
      q[i0] = x0;
      q[i1] = x1;
      q[[5, 6, 7].find((j) => j !== i0 && j !== i1)!] = 127;
      const out = new Float32Array(D);
      native.attention({
        out,
        q,
        cache,
        blockTables: new Int32Array([0]),
        maxBlocksPerSeq: 1,
        qSeq: new Int32Array([0]),
        ctxStart: new Int32Array([0]),
        ctxEnd: new Int32Array([2]),
        nTokens: 1,
        nHeads: 1,
        scale: Math.LN2,
      });
      // The widening path multiplies the unrounded query.
      const [a, b] = path === "widen" ? [x0, x1] : [halfEven(x0), halfEven(x1)];
      const p1 = 1 / (1 + 2 ** (a - b));
      const what = `${variant} (${path}), q[${i0}] = ${x0}, q[${i1}] = ${x1}`;
      assert.ok(Math.abs(out[0]! - (1 - p1)) < 0.005, `${what}: p0 ${out[0]} against ${1 - p1}`);
      assert.ok(Math.abs(out[1]! - p1) < 0.005, `${what}: p1 ${out[1]} against ${p1}`);
    }
  });
});

/**
 * The native kernels' agreement with the reference on the same int8 cache. The widening path
 * computes in fp32 on exactly the reference's values (1e-5 would do); the integer dot-product paths
 * (AVX-512 VNNI, AVX-VNNI, vpmaddubsw) also round each query head to int8 (relative error ≤ 1/254 of
 * its largest element per element) and each step's folded probabilities to 8 bits (7 for vpmaddubsw):
 * the tolerance covers those.
 */
const INT8_KERNEL_RTOL = 2e-2;

test("int8 attention is within the quantization error of attention over the f32 cache", () => {
  // Keys and values uniform in [-1, 1): a step of 1/127 of the row's largest element, so each
  // element is off by at most 1/254 of it, and an output (a convex combination of V rows, with
  // scores off by |q|₁ / 254 / √d at most) by a few hundredths.
  for (const [ci, c] of CASES.entries()) {
    const s = setup(c, 200 + ci);
    const exact = run(ref, s.refF32, s, c);
    const got = run(native, s.nat8, s, c);
    let worst = 0;
    for (let i = 0; i < exact.out.length; i++) worst = Math.max(worst, Math.abs(got.out[i]! - exact.out[i]!));
    assert.ok(worst < 0.05, `case ${ci}: largest output error ${worst}`);
  }
});

test("a malformed int8 cache is refused by name", () => {
  const c = CASES[1]!;
  const s = setup(c, 300);
  const { kScale: _k, vScale: _v, ...noScales } = s.nat8;
  for (const b of [native, ref])
    assert.throws(() => run(b, noScales as KvLayerCache, s, c), /kScale/, `${b.name}: no scales`);
  const odd = { ...s.nat8, blockSize: 6 };
  for (const b of [native, ref])
    assert.throws(
      () => b.kvWrite(odd, new Float32Array(40), new Float32Array(40), new Int32Array([0]), 1),
      /multiple of 4/,
    );
  assert.throws(
    () => emptyCache("int8", 2, 6, 1, 8),
    /int8 KV cache needs a block size that is a multiple of 4, got 6/,
  );
  assert.throws(() => parseKvDtype("int4", "--kv-dtype"), /unknown KV dtype "int4".*f32, f16, bf16, int8/);
});
