// Paged attention, kvWrite and mergeAttention: native against the reference over random block
// tables, ragged ranges, GQA and MHA, every KV dtype and every variant this CPU runs.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import type { KernelBackend, KvDType, KvLayerCache } from "../../src/kernels/backend.js";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import type { DType } from "../../src/model/tensor.js";
import {
  type AttentionShape,
  assertClose,
  emptyCache,
  fillCache,
  type PagedLayout,
  pagedAttention,
  pagedAttentionArgs,
  pagedLayout,
  queryRanges,
  randomF32,
  rng,
} from "./fixtures.js";
import {
  attentionTakesBf16Dot,
  BF16_DOT_RTOL,
  forEachVariant,
  nativeKernels,
  promptTilesTakeAmx,
  roundedToBf16,
} from "./native-setup.js";

const ref = new ReferenceBackend();
const native = nativeKernels();
const KV_DTYPES: DType[] = ["f32", "bf16", "f16"];

type Case = AttentionShape;

const CASES: Case[] = [
  { nHeads: 6, nKvHeads: 2, headDim: 20, blockSize: 16 }, // GQA, group 3, odd head size
  { nHeads: 3, nKvHeads: 3, headDim: 64, blockSize: 5 }, // MHA, small odd blocks
  { nHeads: 28, nKvHeads: 4, headDim: 128, blockSize: 32 }, // group 7 (Qwen2-7B-like)
  // group 8: two 4-head passes of the bf16 dot-product scores kernel per KV head
  { nHeads: 16, nKvHeads: 2, headDim: 128, blockSize: 16 },
  // MHA, head size past the values kernel's register-wide column pass: the leftover columns
  // (from 64 on, with AVX2 and the 4-wide portable variant alike) take the narrow path.
  { nHeads: 4, nKvHeads: 4, headDim: 72, blockSize: 16 },
  // group 17: four 4-head passes of the bf16 dot-product scores kernel and one head left over
  { nHeads: 34, nKvHeads: 2, headDim: 32, blockSize: 16 },
  // group 4 at head_dim 64 and 96: the held-query scores kernel's other register counts
  { nHeads: 8, nKvHeads: 2, headDim: 64, blockSize: 16 },
  { nHeads: 12, nKvHeads: 3, headDim: 96, blockSize: 8 },
  // rows of at most one vector (attention_short_rows.h): head_dim 8 (stories260K's shape; two rows
  // a 512-bit vector, one a 256-bit vector), MHA on blocks of 5, and head_dim 16 (one 512-bit row)
  { nHeads: 8, nKvHeads: 4, headDim: 8, blockSize: 16 },
  { nHeads: 3, nKvHeads: 3, headDim: 8, blockSize: 5 },
  { nHeads: 6, nKvHeads: 2, headDim: 16, blockSize: 8 },
];

/** Query tokens over three sequences: a decode, a causal prefill chunk, a sub-range, an empty range. */
function ragged(layout: PagedLayout) {
  return queryRanges((add) => {
    add(0, 0, layout.seqLens[0]!);
    for (let p = layout.seqLens[1]! - 9; p < layout.seqLens[1]!; p++) add(1, 0, p + 1);
    add(2, 2, layout.seqLens[2]!);
    add(2, 3, 3);
  });
}

function setup(c: Case, dtype: DType, seed: number, seqLens = [37, 70, 6]) {
  const rand = rng(seed);
  const layout = pagedLayout(seqLens, c.blockSize, rand);
  const caches: KvLayerCache[] = [ref, native].map(() =>
    emptyCache(dtype, layout.numBlocks, c.blockSize, c.nKvHeads, c.headDim),
  );
  fillCache(ref, caches[0]!, layout, rng(seed + 1));
  fillCache(native, caches[1]!, layout, rng(seed + 1));
  const r = ragged(layout);
  const q = randomF32(r.n * c.nHeads * c.headDim, rand, 2);
  return { layout, refCache: caches[0]!, natCache: caches[1]!, q, ...r };
}

function run(
  b: KernelBackend,
  cache: KvLayerCache,
  s: ReturnType<typeof setup>,
  c: Case,
  ranges?: { ctxStart: Int32Array; ctxEnd: Int32Array },
) {
  return pagedAttention(b, cache, s, c.nHeads, c.headDim, ranges ?? {});
}

test("kvWrite fills the paged cache identically to the reference (bit-exact narrowing)", () => {
  for (const dtype of KV_DTYPES) {
    const s = setup(CASES[0]!, dtype, 10);
    assert.deepEqual(s.natCache.k, s.refCache.k, `${dtype} K`);
    assert.deepEqual(s.natCache.v, s.refCache.v, `${dtype} V`);
    // A padding slot (-1) writes nothing.
    const before = Uint8Array.from(new Uint8Array(s.natCache.k.buffer));
    const w = CASES[0]!.nKvHeads * CASES[0]!.headDim;
    native.kvWrite(s.natCache, randomF32(w, rng(1)), randomF32(w, rng(2)), new Int32Array([-1]), 1);
    assert.deepEqual(new Uint8Array(s.natCache.k.buffer), before);
  }
});

/** Whether the variant selected now takes bf16 dot products for this case (see `expectation`). */
function takesBf16Dot(dtype: KvDType, c: Case): boolean {
  return attentionTakesBf16Dot(native, dtype, c.nHeads, c.nKvHeads, c.headDim);
}

/** The queries of ragged() that a prompt tile takes: sequence 1's causal chunk of 9 tokens. */
const TILE_QUERIES = { from: 1, to: 10 };

interface Expected {
  out: Float32Array;
  lse: Float32Array;
  rtol: number;
  /** What TILE_QUERIES are held to where the prompt tiles round what the other queries' kernel does not. */
  tiles?: { out: Float32Array; lse: Float32Array; rtol: number };
}

/**
 * What the reference gives for the variant selected now, and how close it must come. On a bf16
 * cache with query groups of 2 or more and head_dim a multiple of 32, a variant with bf16 dot
 * products (avx512bf16: vdpbf16ps) multiplies the keys by the queries rounded to bf16 and the
 * values by the probabilities rounded to bf16: its reference runs on the rounded queries, and the
 * rounded probabilities may move an output by one bf16 step (2^-8) of the largest. A variant with
 * AMX tiles rounds the same way in its prompt tiles only (a bf16 cache, head_dim a multiple of
 * 32): there the tile run's queries take the rounded reference. Everything else is fp32 in both, up
 * to summation order (1e-5).
 */
function expectation(cache: KvLayerCache, s: ReturnType<typeof setup>, c: Case): () => Expected {
  const plain = { ...run(ref, cache, s, c), rtol: 1e-5 };
  const rounded =
    cache.dtype === "bf16"
      ? { ...run(ref, cache, { ...s, q: roundedToBf16(s.q) }, c), rtol: BF16_DOT_RTOL }
      : plain;
  return () =>
    takesBf16Dot(cache.dtype, c)
      ? rounded
      : promptTilesTakeAmx(native, cache.dtype, c.headDim)
        ? { ...plain, tiles: rounded }
        : plain;
}

/** got against `e`, TILE_QUERIES against e.tiles where the expectation has them. */
function assertExpected(
  got: { out: Float32Array; lse: Float32Array },
  e: Expected,
  c: Case,
  what: string,
): void {
  if (!e.tiles) {
    assertClose(got.out, e.out, `out ${what}`, e.rtol);
    assertClose(got.lse, e.lse, `lse ${what}`, e.rtol);
    return;
  }
  const n = got.lse.length / c.nHeads,
    width = c.nHeads * c.headDim;
  const parts = [
    { from: 0, to: TILE_QUERIES.from, want: e },
    { ...TILE_QUERIES, want: e.tiles },
    { from: TILE_QUERIES.to, to: n, want: e },
  ];
  for (const { from, to, want } of parts) {
    const at = (x: Float32Array, k: number) => x.subarray(from * k, to * k);
    const which = `${what} queries ${from}-${to}`;
    assertClose(at(got.out, width), at(want.out, width), `out ${which}`, want.rtol);
    assertClose(at(got.lse, c.nHeads), at(want.lse, c.nHeads), `lse ${which}`, want.rtol);
  }
}

test("attention matches the reference (GQA/MHA, ragged ranges, every KV dtype and variant)", () => {
  const ran = new Set<string>();
  const dotAttention = new Set<string>();
  for (const [ci, c] of CASES.entries()) {
    for (const dtype of KV_DTYPES) {
      const s = setup(c, dtype, 100 + ci);
      const expectedFor = expectation(s.refCache, s, c);
      forEachVariant(
        native,
        (v) => {
          const expected = expectedFor();
          const got = run(native, s.natCache, s, c);
          const what = `${v} ${dtype} heads ${c.nHeads}/${c.nKvHeads} d${c.headDim} bs${c.blockSize}`;
          assertExpected(got, expected, c, what);
          ran.add(v);
          if (takesBf16Dot(dtype, c)) ran.add(`${v} (bf16 dot products)`);
          if (expected.tiles) ran.add(`${v} (AMX prompt tiles)`);
          if (native.info().bf16DotAttention) dotAttention.add(v);
        },
        { emulated: true },
      );
      // The empty range: zeros and -Infinity.
      const last = run(native, s.natCache, s, c);
      const row = (s.n - 1) * c.nHeads;
      assert.equal(last.lse[row], Number.NEGATIVE_INFINITY);
      assert.equal(last.out[row * c.headDim], 0);
    }
  }
  // Which variants ran, so a log shows what this CPU covered.
  console.log(`attention variants tested: ${[...ran].join(", ")}`);
  const { supported, emulated } = native.info();
  assert.deepEqual(
    [...ran].filter((v) => !v.includes("(")),
    [...supported, ...emulated],
    "every supported and emulated variant ran",
  );
  // vdpbf16ps attention on the AVX-512-BF16 build only: the AMX builds (Intel CPUs, where it runs
  // at half the FMA's rate) and the others widen K and V to fp32.
  assert.deepEqual(
    [...dotAttention],
    supported.filter((v) => v === "avx512bf16"),
  );
  for (const v of dotAttention) assert.ok(ran.has(`${v} (bf16 dot products)`), `${v} took bf16 dot products`);
  for (const v of [...supported, ...emulated].filter((x) => x.startsWith("amx")))
    assert.ok(ran.has(`${v} (AMX prompt tiles)`), `${v} took its AMX prompt tiles`);
});

// The softmax's exponential returns exactly 0 below e^-87 without computing the underflow (an
// underflowing result costs the core a microcode assist): queries 40 times larger spread each
// token's scores over hundreds, so many probabilities fall below that line and many just above
// it, and the outputs and lse must still be the reference's.
test("attention with scores spread over hundreds (probabilities under e^-87) matches the reference, every KV dtype and variant", () => {
  for (const c of [CASES[0]!, CASES[2]!, CASES[8]!]) {
    for (const dtype of KV_DTYPES) {
      const s = setup(c, dtype, 300);
      s.q = s.q.map((x) => x * 40);
      const expectedFor = expectation(s.refCache, s, c);
      forEachVariant(
        native,
        (v) => {
          const got = run(native, s.natCache, s, c);
          for (const x of got.out) assert.ok(Number.isFinite(x), `${v} ${dtype}: a finite output`);
          // Scores of hundreds carry fp32 rounding of a few parts in 10^5 into the exponent.
          const e = expectedFor();
          const rtol = Math.max(e.rtol, 5e-5);
          const wide = { ...e, rtol, tiles: e.tiles && { ...e.tiles, rtol: Math.max(e.tiles.rtol, rtol) } };
          assertExpected(got, wide, c, `${v} ${dtype} heads ${c.nHeads}/${c.nKvHeads} d${c.headDim}`);
        },
        { emulated: true },
      );
    }
  }
});

/** The sum of the little-endian 64-bit words of n bytes at `at` (a last 4 bytes zero-extended). */
function wordSum(view: DataView, at: number, n: number): bigint {
  let sum = 0n;
  let b = 0;
  for (; b + 8 <= n; b += 8) sum += view.getBigUint64(at + b, true);
  if (b < n) sum += BigInt(view.getUint32(at + b, true));
  return sum;
}

const bytesOf = (x: ArrayBufferView) => new DataView(x.buffer, x.byteOffset, x.byteLength);

/**
 * The sum (modulo 2^64) of the 64-bit words of every K and V row the query tokens of s read, as the
 * addon's attentionReadPattern sums them: a float cache's rows of each token's keys [ctxStart,
 * ctxEnd) for every KV head, once; an int8 cache's whole groups of 4 keys that the range touches
 * (4 rows of bytes), each with its 4 scales.
 */
function rowWordSum(cache: KvLayerCache, s: ReturnType<typeof setup>, c: Case): bigint {
  const int8 = cache.dtype === "int8",
    unit = int8 ? 4 : 1, // keys a read takes: an int8 group, a float row
    es = cache.k.BYTES_PER_ELEMENT,
    rowBytes = c.headDim * es,
    bs = c.blockSize;
  const mask = (1n << 64n) - 1n;
  let sum = 0n;
  for (const [data, scales] of [
    [cache.k, cache.kScale],
    [cache.v, cache.vScale],
  ] as const) {
    const view = bytesOf(data);
    const scaleView = scales ? bytesOf(scales) : undefined;
    for (let t = 0; t < s.n; t++) {
      const start = s.ctxStart[t]!,
        end = s.ctxEnd[t]!;
      for (let p = Math.floor(start / unit) * unit; start < end && p < end; p += unit) {
        const block = s.layout.blockTables[s.qSeq[t]! * s.layout.maxBlocksPerSeq + Math.floor(p / bs)]!;
        for (let kh = 0; kh < c.nKvHeads; kh++) {
          const row = (block * c.nKvHeads + kh) * bs + (p % bs);
          sum += wordSum(view, row * rowBytes, unit * rowBytes);
          if (scaleView) sum += wordSum(scaleView, row * 4, unit * 4);
        }
      }
    }
  }
  return sum & mask;
}

/** Cases whose long contexts make tasks the read-ahead takes: GQA and MHA, blocks of 16 and 64, head_dim 8 to 128. */
const LONG_CASES: Case[] = [
  CASES[2]!,
  CASES[1]!,
  CASES[8]!,
  { nHeads: 8, nKvHeads: 2, headDim: 128, blockSize: 64 },
];

/**
 * Whether the variant selected now has a loads-only twin of its int8 path for head_dim d: the
 * byte-product paths (not the portable build's widening), whose 512-bit kernels take head sizes in
 * quads and the AVX2 ones in eights.
 */
function int8PatternTakes(v: string, d: number): boolean {
  return native.info().int8Attention !== "widen" && d % (v.startsWith("avx2") ? 8 : 4) === 0;
}

test("the read-pattern yardstick reads every K and V row (int8: group and scales) of each token's range once, in the decode kernel's steps (every KV dtype and variant, read-ahead on and off)", () => {
  // Long and short contexts (flash-decoding parts, steps of several blocks, read-ahead), GQA and
  // MHA, head_dim 8 to 128, blocks of 5 to 64 (int8: blocks of whole groups).
  const cases: Case[] = [CASES[0]!, ...LONG_CASES];
  const ran = new Set<string>();
  try {
    for (const [ci, c] of cases.entries())
      for (const dtype of [...KV_DTYPES, "int8" as const]) {
        if (dtype === "int8" && c.blockSize % 4 !== 0) continue;
        const s = setup(c, dtype as DType, 5100 + ci, [3000, 300, 6]);
        const want = rowWordSum(s.natCache, s, c);
        assert.notEqual(want, 0n);
        forEachVariant(native, (v) => {
          for (const ahead of [true, false]) {
            native.setReadAhead(ahead);
            const call = pagedAttentionArgs(s.natCache, s, c.nHeads, c.headDim);
            const out = call.out.fill(7);
            const what = `${v} ${dtype} heads ${c.nHeads}/${c.nKvHeads} d${c.headDim} bs${c.blockSize} ahead ${ahead}`;
            if (dtype === "int8" && !int8PatternTakes(v, c.headDim)) {
              assert.throws(
                () => native.attentionReadPattern(call),
                /attentionReadPattern: int8 attention widens on .*; its reads have no loads-only twin/,
                what,
              );
              continue;
            }
            assert.equal(native.attentionReadPattern(call), want, what);
            assert.ok(
              out.every((x) => x === 7),
              `${what}: out untouched`,
            );
            ran.add(`${v} ${dtype}`);
          }
        });
      }
  } finally {
    native.setReadAhead(null);
  }
  // Every variant read every dtype, int8 where its path has a twin.
  forEachVariant(native, (v) => {
    for (const dtype of [...KV_DTYPES, "int8"])
      if (dtype !== "int8" || int8PatternTakes(v, 128))
        assert.ok(ran.has(`${v} ${dtype}`), `${v} ${dtype} ran`);
  });
});

test("decode attention gives the same bits with its KV rows asked for ahead in software and without (every float dtype and variant); the default follows the CPU's vendor", () => {
  // Software read-ahead is on by default on Intel CPUs only, and for grouped queries through
  // vdpbf16ps on every CPU (read_ahead_policy.h), and asks for
  // each step's rows in the order the kernels take them, gathered two steps ahead, for rows of 128
  // bytes or more in tasks of 1 MiB or more (read_ahead.h's aheadPays): a context of 3000 keys
  // makes such tasks; GQA and MHA, blocks of 16 and 64, head_dim 8 (never ahead) to 128.
  const intel = /^vendor_id\s*:\s*GenuineIntel$/m.test(readFileSync("/proc/cpuinfo", "utf8"));
  assert.equal(native.info().readAhead, intel, "the default");
  assert.equal(native.info().readAheadBf16Dot, true, "the default for vdpbf16ps");
  try {
    for (const [ci, c] of LONG_CASES.entries())
      for (const dtype of KV_DTYPES) {
        const s = setup(c, dtype, 4100 + ci, [3000, 300, 6]);
        const expectedFor = expectation(s.refCache, s, c);
        forEachVariant(
          native,
          (v) => {
            const what = `${v} ${dtype} heads ${c.nHeads}/${c.nKvHeads} d${c.headDim} bs${c.blockSize}`;
            native.setReadAhead(true);
            assert.equal(native.info().readAhead, true);
            assert.equal(native.info().readAheadBf16Dot, true);
            const ahead = run(native, s.natCache, s, c);
            native.setReadAhead(false);
            assert.equal(native.info().readAhead, false);
            assert.equal(native.info().readAheadBf16Dot, false);
            const plain = run(native, s.natCache, s, c);
            assert.deepEqual(ahead.out, plain.out, `out ${what}`);
            assert.deepEqual(ahead.lse, plain.lse, `lse ${what}`);
            assertExpected(ahead, expectedFor(), c, what);
          },
          { emulated: true },
        );
      }
  } finally {
    native.setReadAhead(null);
  }
  assert.equal(native.info().readAhead, intel, "null restores the default");
  assert.equal(native.info().readAheadBf16Dot, true, "null restores the default (every CPU)");
  assert.throws(() => native.setReadAhead("on" as unknown as boolean), {
    name: "TypeError",
    message: /setReadAhead: on must be a boolean or null/,
  });
});

test("merging two disjoint key ranges with their lse equals attention over the whole range", () => {
  const c = CASES[0]!;
  for (const dtype of ["f32", "bf16"] as const) {
    const s = setup(c, dtype, 200);
    for (const [b, cache] of [
      [ref, s.refCache],
      [native, s.natCache],
    ] as const) {
      const full = run(b, cache, s, c);
      // Split every token's range at its midpoint; some halves are empty.
      const mid = s.ctxStart.map((a, i) => a + Math.floor((s.ctxEnd[i]! - a) / 2));
      const first = run(b, cache, s, c, { ctxStart: s.ctxStart, ctxEnd: mid });
      const second = run(b, cache, s, c, { ctxStart: mid, ctxEnd: s.ctxEnd });
      b.mergeAttention(first.out, first.lse, second.out, second.lse, s.n, c.nHeads, c.headDim);
      assertClose(first.out, full.out, `${b.name} ${dtype} merged out`, 2e-5);
      assertClose(first.lse, full.lse, `${b.name} ${dtype} merged lse`, 2e-5);
    }
  }
});

test("mergeAttention matches the reference, including rows where one side is empty", () => {
  const rand = rng(300);
  const nTokens = 5;
  const nHeads = 3;
  const headDim = 37;
  const outA = randomF32(nTokens * nHeads * headDim, rand);
  const outB = randomF32(nTokens * nHeads * headDim, rand);
  const lseA = randomF32(nTokens * nHeads, rand, 5);
  const lseB = randomF32(nTokens * nHeads, rand, 5);
  lseA[1] = Number.NEGATIVE_INFINITY;
  lseB[4] = Number.NEGATIVE_INFINITY;
  lseA[7] = Number.NEGATIVE_INFINITY;
  lseB[7] = Number.NEGATIVE_INFINITY;
  const eOut = Float32Array.from(outA);
  const eLse = Float32Array.from(lseA);
  ref.mergeAttention(eOut, eLse, outB, lseB, nTokens, nHeads, headDim);
  forEachVariant(native, (v) => {
    const o = Float32Array.from(outA);
    const l = Float32Array.from(lseA);
    native.mergeAttention(o, l, outB, lseB, nTokens, nHeads, headDim);
    assertClose(o, eOut, `merge out ${v}`);
    assertClose(l, eLse, `merge lse ${v}`);
  });
});

test("attention rejects block tables and ranges that point outside the cache", () => {
  const c = CASES[0]!;
  const s = setup(c, "f32", 400);
  for (const b of [ref, native]) {
    const cache = b === ref ? s.refCache : s.natCache;
    const bad = Int32Array.from(s.layout.blockTables);
    bad[0] = s.layout.numBlocks; // first block of sequence 0
    assert.throws(
      () => run(b, cache, { ...s, layout: { ...s.layout, blockTables: bad } }, c),
      { name: "RangeError" },
      `${b.name}: bad block id`,
    );
    const tooFar = Int32Array.from(s.ctxEnd);
    tooFar[0] = s.layout.maxBlocksPerSeq * c.blockSize + 1;
    assert.throws(() => run(b, cache, s, c, { ctxStart: s.ctxStart, ctxEnd: tooFar }), {
      name: "RangeError",
    });
    assert.throws(
      () => run(b, cache, { ...s, q: new Float32Array(3) }, c),
      { name: "TypeError", message: /attention: q has 3 elements/ },
      `${b.name}: short q`,
    );
  }
});

/**
 * Decode tokens over sequences of the given lengths (token i reads sequence i's keys from
 * starts[i]): the native kernels on 1 and 2 threads, every variant, against the reference.
 */
function checkAcrossThreads(
  c: Case,
  dtype: DType,
  lens: number[],
  starts: number[],
  seed: number,
  what: string,
) {
  const rand = rng(seed);
  const layout = pagedLayout(lens, c.blockSize, rand);
  const refCache = emptyCache(dtype, layout.numBlocks, c.blockSize, c.nKvHeads, c.headDim);
  const natCache = emptyCache(dtype, layout.numBlocks, c.blockSize, c.nKvHeads, c.headDim);
  fillCache(ref, refCache, layout, rng(seed + 1));
  fillCache(native, natCache, layout, rng(seed + 1));
  const n = lens.length;
  const s = {
    layout,
    refCache,
    natCache,
    q: randomF32(n * c.nHeads * c.headDim, rand, 2),
    qSeq: Int32Array.from(lens, (_, i) => i),
    ctxStart: Int32Array.from(starts),
    ctxEnd: Int32Array.from(lens),
    n,
  };
  const expectedFor = expectation(refCache, s, c);
  const threadsBefore = native.info().threads;
  try {
    for (const threads of [1, 2]) {
      native.setThreads(threads);
      forEachVariant(
        native,
        (v) => {
          const expected = expectedFor();
          const got = run(native, natCache, s, c);
          assertClose(got.out, expected.out, `out ${v} ${dtype} ${what} ${threads} thread(s)`, expected.rtol);
          assertClose(got.lse, expected.lse, `lse ${v} ${dtype} ${what} ${threads} thread(s)`, expected.rtol);
        },
        { emulated: true },
      );
    }
  } finally {
    native.setThreads(threadsBefore);
  }
}

test("long contexts of few tokens are split over threads and merged exactly", () => {
  // Two decode tokens, one KV head: 2 tasks for 1–2 threads, so each long range is cut into
  // parts computed separately and merged by their lse (flash-decoding). Ranges start off a
  // block boundary so the parts do not line up with blocks.
  const c: Case = { nHeads: 4, nKvHeads: 1, headDim: 64, blockSize: 16 };
  for (const dtype of ["f32", "bf16"] as const) checkAcrossThreads(c, dtype, [2600, 1300], [7, 0], 500, "");
});

test("one token's KV heads split into head groups (with and without range parts) match the reference", () => {
  // One decode token leaves fewer tasks than threads want, so its KV heads are cut into groups of
  // unequal size (6 heads into 4 groups on one thread, 6 on two) and, for the longer context,
  // its range into parts as well; every task reads its heads' rows of a block as one region.
  // Groups of 2 and of 4 (on a bf16 cache, each task's queries go into the 4-head scores kernel's
  // order per KV head).
  for (const c of [
    { nHeads: 12, nKvHeads: 6, headDim: 32, blockSize: 16 },
    { nHeads: 24, nKvHeads: 6, headDim: 64, blockSize: 16 },
  ])
    for (const len of [300, 1100])
      for (const dtype of ["f32", "bf16"] as const)
        checkAcrossThreads(c, dtype, [len], [3], 600 + len, `group ${c.nHeads / c.nKvHeads} ctx ${len}`);
});

test("blocks of 32, 64 and 128 (steps of 256 and 512 keys) match the reference over several steps", () => {
  // A step takes 8 blocks (at least 128 keys, at most 512): these contexts span several steps of
  // each length and end inside one, start off a block boundary, and on two threads are cut into
  // parts; GQA with head_dim 128 takes the bf16 dot-product kernels where the variant has them.
  for (const blockSize of [32, 64, 128])
    for (const c of [
      { nHeads: 8, nKvHeads: 2, headDim: 128, blockSize },
      { nHeads: 2, nKvHeads: 2, headDim: 64, blockSize },
    ])
      for (const dtype of ["f32", "bf16"] as const)
        checkAcrossThreads(
          c,
          dtype,
          [1700, 700],
          [5, 0],
          700 + blockSize,
          `bs ${blockSize} group ${c.nHeads / c.nKvHeads}`,
        );
});
