// Prompt attention in tiles of query tokens (native/kernels/src/attention_tile*.h): runs of 8 or
// more consecutive tokens of one sequence, against the reference and against themselves computed in
// other calls, on every variant this CPU runs and every KV dtype (AMX tiles on bf16 caches on the
// amxbf16 build and its emulated twin, vdpbf16ps tiles where decode attention takes vdpbf16ps,
// byte-product tiles on int8 caches, fp32 multiply-add tiles elsewhere: the portable build's on
// int8 rows dequantized).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { AttentionArgs, KvDType, KvLayerCache } from "../../src/kernels/backend.js";
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

type Shape = AttentionShape;

// Groups of 3 (21 tokens a tile: 63 rows and a padding row), 4 (16 tokens), 8 (8 tokens, head_dim
// 96: a last column chunk narrower than the rest), 2 (32 tokens, head_dim 256), 64 (one token a
// tile) and 1 (MHA, 64 tokens a tile; head_dim 48, no multiple of 32: fp32 tiles on every variant).
const SHAPES: Shape[] = [
  { nHeads: 9, nKvHeads: 3, headDim: 64, blockSize: 16 },
  { nHeads: 8, nKvHeads: 2, headDim: 128, blockSize: 64 },
  { nHeads: 16, nKvHeads: 2, headDim: 96, blockSize: 32 },
  { nHeads: 4, nKvHeads: 2, headDim: 256, blockSize: 16 },
  { nHeads: 64, nKvHeads: 1, headDim: 32, blockSize: 16 },
  { nHeads: 2, nKvHeads: 2, headDim: 48, blockSize: 16 },
];
const KV_DTYPES: KvDType[] = ["bf16", "f16", "f32", "int8"];

// Sequence lengths: a prompt chunk after a cached context, a decode token's sequence, a sliding
// window, early-q ranges, and a run too short for tiles.
const LENS = [180, 97, 90, 70, 40];

/**
 * The query tokens of one call: sequence 0's chunk of 50 tokens after 130 cached (causal), a decode
 * token, sequence 2's 30 tokens at positions 60-89 under a window of 40 keys (both ends move),
 * sequence 3's 12 tokens all over the 70 keys cached before a step (early q), and 7 tokens of
 * sequence 4 (below the 8 a tile run needs).
 */
function promptQueries() {
  return queryRanges((add) => {
    for (let p = 130; p < 180; p++) add(0, 0, p + 1);
    add(1, 0, 97);
    for (let p = 60; p < 90; p++) add(2, Math.max(0, p + 1 - 40), p + 1);
    for (let i = 0; i < 12; i++) add(3, 0, 70);
    for (let p = 33; p < 40; p++) add(4, 0, p + 1);
  });
}

/** Queries of promptQueries() that take the per-token kernel: the decode token and the 7-token run. */
const PER_TOKEN_QUERIES = new Set([50, 93, 94, 95, 96, 97, 98, 99]);

/**
 * The int8 integer kernels' agreement with the reference (native-attention-int8.test.ts): the
 * per-token ones, and the byte tiles (7-bit queries through vpmaddubsw), round each query head and each
 * step's probabilities to bytes, where the fp32 tiles multiply the dequantized rows by unrounded
 * queries.
 */
const INT8_BYTES_RTOL = 2e-2;

/**
 * Whether the variant now selected runs an int8 cache's prompt tiles through byte products
 * (kernels.cpp, attentionTileWith): every build with byte-product decode kernels, through vpdpbusd
 * or vpmaddubsw as they do.
 */
function int8TilesInBytes(): boolean {
  return native.info().int8Attention !== "widen";
}

interface Expected {
  out: Float32Array;
  lse: Float32Array;
}

/**
 * got against want query by query: tile queries within rtol (on an int8 cache, the fp32 tiles; the
 * byte tiles within INT8_BYTES_RTOL), the per-token kernel's on an int8 cache within
 * INT8_BYTES_RTOL. `perToken`: where the tiles round what the per-token kernel does not (the AMX
 * tiles' bf16 queries beside a widening decode kernel), what the per-token queries are held to.
 */
function assertQueriesClose(
  got: Expected,
  want: Expected,
  c: Shape,
  dtype: KvDType,
  what: string,
  rtol: number,
  perToken?: { want: Expected; rtol: number },
): void {
  if (dtype !== "int8" && !perToken) {
    assertClose(got.out, want.out, `out ${what}`, rtol);
    assertClose(got.lse, want.lse, `lse ${what}`, rtol);
    return;
  }
  const tileRtol = dtype === "int8" && int8TilesInBytes() ? INT8_BYTES_RTOL : rtol;
  const width = c.nHeads * c.headDim;
  for (let t = 0; t < want.lse.length / c.nHeads; t++) {
    const onTile = !PER_TOKEN_QUERIES.has(t);
    const w = onTile || !perToken ? want : perToken.want;
    const tol = onTile ? tileRtol : perToken ? perToken.rtol : INT8_BYTES_RTOL;
    const rows = (x: Float32Array, n: number) => x.subarray(t * n, (t + 1) * n);
    assertClose(rows(got.out, width), rows(w.out, width), `out ${what} query ${t}`, tol);
    assertClose(rows(got.lse, c.nHeads), rows(w.lse, c.nHeads), `lse ${what} query ${t}`, tol);
  }
}

/**
 * What the variant selected now is held to on this cache: the reference on bf16-rounded queries
 * (`dot`) where its tiles round (vdpbf16ps or AMX) within BF16_DOT_RTOL, else the plain one within
 * 1e-5; where AMX tiles sit beside a per-token kernel that widens, the per-token queries to the
 * plain one.
 */
function expectationFor(dtype: KvDType, c: Shape, plain: Expected, dot: Expected) {
  const takesDot = attentionTakesBf16Dot(native, dtype, c.nHeads, c.nKvHeads, c.headDim);
  const takesAmx = promptTilesTakeAmx(native, dtype, c.headDim);
  const rounded = takesDot || takesAmx;
  return {
    takesDot,
    takesAmx,
    want: rounded ? dot : plain,
    rtol: rounded ? BF16_DOT_RTOL : 1e-5,
    perToken: takesAmx && !takesDot ? { want: plain, rtol: 1e-5 } : undefined,
  };
}

/**
 * That the tiles took a path that rounds the queries (the AMX tiles), seen in their output: the
 * same call with the tiles off (the per-token kernel, which widens and does not round) must differ
 * on some tile query by more than fp32 summation order could (1e-5 of the largest output).
 */
function assertTilesRounded(s: ReturnType<typeof setup>, c: Shape, got: Expected, what: string): void {
  native.setPromptTiles(false);
  let perToken: Expected;
  try {
    perToken = pagedAttention(native, s.natCache, s, c.nHeads, c.headDim);
  } finally {
    native.setPromptTiles(true);
  }
  const width = c.nHeads * c.headDim;
  let largest = 0;
  let diff = 0;
  for (let i = 0; i < got.out.length; i++) {
    if (PER_TOKEN_QUERIES.has(Math.floor(i / width))) continue;
    largest = Math.max(largest, Math.abs(perToken.out[i]!));
    diff = Math.max(diff, Math.abs(got.out[i]! - perToken.out[i]!));
  }
  assert.ok(
    diff > 1e-5 * largest,
    `${what}: the prompt tiles rounded their queries (AMX) (${diff} of ${largest})`,
  );
}

function setup(c: Shape, seed: number, dtype: KvDType = "bf16") {
  const rand = rng(seed);
  const layout = pagedLayout(LENS, c.blockSize, rand);
  const caches = [ref, native].map((b) => {
    const cache = emptyCache(dtype, layout.numBlocks, c.blockSize, c.nKvHeads, c.headDim);
    fillCache(b, cache, layout, rng(seed + 1));
    return cache;
  });
  const r = promptQueries();
  return {
    layout,
    refCache: caches[0]!,
    natCache: caches[1]!,
    q: randomF32(r.n * c.nHeads * c.headDim, rand, 2),
    ...r,
  };
}

test("prompt runs in tiles match the reference (causal chunks, sliding windows, early q, beside decode tokens)", () => {
  const ran = new Set<string>();
  for (const [i, c] of SHAPES.entries())
    for (const dtype of KV_DTYPES) {
      const s = setup(c, 900 + i, dtype);
      const plain = { ...pagedAttention(ref, s.refCache, s, c.nHeads, c.headDim), rtol: 1e-5 };
      const dot =
        dtype === "bf16"
          ? {
              ...pagedAttention(ref, s.refCache, { ...s, q: roundedToBf16(s.q) }, c.nHeads, c.headDim),
              rtol: BF16_DOT_RTOL,
            }
          : plain;
      const threadsBefore = native.info().threads;
      try {
        for (const threads of [1, 2]) {
          native.setThreads(threads);
          forEachVariant(
            native,
            (v) => {
              const { takesDot, takesAmx, want, rtol, perToken } = expectationFor(dtype, c, plain, dot);
              const got = pagedAttention(native, s.natCache, s, c.nHeads, c.headDim);
              const what = `${v} ${dtype} heads ${c.nHeads}/${c.nKvHeads} d${c.headDim} bs${c.blockSize} ${threads} thread(s)`;
              assertQueriesClose(got, want, c, dtype, what, rtol, perToken);
              if (takesAmx) assertTilesRounded(s, c, got, what);
              ran.add(
                takesAmx
                  ? `${v} (AMX tiles)`
                  : takesDot
                    ? `${v} (vdpbf16ps tiles)`
                    : dtype === "int8" && int8TilesInBytes()
                      ? `${v} (byte tiles)`
                      : v,
              );
            },
            { emulated: true },
          );
        }
      } finally {
        native.setThreads(threadsBefore);
      }
    }
  console.log(`prompt tiles tested on: ${[...ran].join(", ")}`);
  const { supported, emulated } = native.info();
  assert.deepEqual(
    [...ran].filter((v) => !v.includes("(")).sort(),
    [...supported, ...emulated].sort(),
    "fp32 tiles on every variant",
  );
  for (const v of supported.filter((x) => x === "avx512bf16"))
    assert.ok(ran.has(`${v} (vdpbf16ps tiles)`), `${v} took the vdpbf16ps tiles`);
  // AMX tiles on bf16 caches wherever the variant has tiles: the hardware's, and the emulated twin
  // on every CPU with AVX-512-BF16.
  for (const v of [...supported, ...emulated].filter((x) => x.startsWith("amx")))
    assert.ok(ran.has(`${v} (AMX tiles)`), `${v} took the AMX tiles on a bf16 cache`);
  // Byte tiles on every build but the portable one (whose int8 decode path widens to fp32).
  for (const v of [...supported, ...emulated].filter((x) => x !== "portable"))
    assert.ok(ran.has(`${v} (byte tiles)`), `${v} took the byte tiles on an int8 cache`);
});

/** Attention of queries [from, to) of `s` alone, in a call of their own (lse optional). */
function callOf(
  s: ReturnType<typeof setup>,
  c: Shape,
  from: number,
  to: number,
  withLse: boolean,
): { out: Float32Array; lse: Float32Array | undefined } {
  const n = to - from;
  const width = c.nHeads * c.headDim;
  const out = new Float32Array(n * width).fill(Number.NaN);
  const lse = withLse ? new Float32Array(n * c.nHeads).fill(Number.NaN) : undefined;
  const args: AttentionArgs = {
    out,
    q: s.q.subarray(from * width, to * width),
    cache: s.natCache as KvLayerCache,
    blockTables: (s.layout as PagedLayout).blockTables,
    maxBlocksPerSeq: s.layout.maxBlocksPerSeq,
    qSeq: s.qSeq.subarray(from, to),
    ctxStart: s.ctxStart.subarray(from, to),
    ctxEnd: s.ctxEnd.subarray(from, to),
    nTokens: n,
    nHeads: c.nHeads,
    scale: 1 / Math.sqrt(c.headDim),
    ...(lse ? { lse } : {}),
  };
  native.attention(args);
  return { out, lse };
}

test("a prompt token's output is the same bits whichever call and tile it comes in", () => {
  // The prefix cache and chunked prefill compute a prompt's tokens in calls of different sizes:
  // sequence 0's 50-token causal chunk (queries 0-49) and sequence 2's 30 windowed tokens (queries
  // 51-80, where each part starts its keys elsewhere) whole, then each cut in two (tiles cut
  // elsewhere), on 1 and 2 threads, the second part without lse.
  const runs = [
    { from: 0, to: 50, cuts: [8, 29] },
    { from: 51, to: 81, cuts: [60, 71] },
  ];
  for (const c of SHAPES.slice(0, 3))
    for (const dtype of KV_DTYPES) {
      const s = setup(c, 950, dtype);
      const width = c.nHeads * c.headDim;
      const threadsBefore = native.info().threads;
      try {
        forEachVariant(native, (v) => {
          for (const { from, to, cuts } of runs) {
            native.setThreads(2);
            const whole = callOf(s, c, from, to, true);
            for (const threads of [1, 2]) {
              native.setThreads(threads);
              for (const cut of cuts) {
                const a = callOf(s, c, from, cut, true);
                const b = callOf(s, c, cut, to, false);
                const k = cut - from;
                const what = `${v} ${dtype} heads ${c.nHeads}/${c.nKvHeads} queries ${from}-${to} cut at ${cut}, ${threads} thread(s)`;
                assert.deepEqual(a.out, whole.out.subarray(0, k * width), `first part ${what}`);
                assert.deepEqual(a.lse, whole.lse!.subarray(0, k * c.nHeads), `first part's lse ${what}`);
                assert.deepEqual(b.out, whole.out.subarray(k * width), `second part (no lse) ${what}`);
              }
            }
          }
        });
      } finally {
        native.setThreads(threadsBefore);
      }
    }
});

test("a prompt run with soft-capped scores (Gemma 2) matches the reference on every KV dtype", () => {
  // A cap of 5 on scores of a few units: the tanh bends them, so a cap not applied, or applied
  // to unscaled scores, shows (tiles and the decode token's per-token kernel alike).
  for (const c of [SHAPES[0]!, SHAPES[1]!])
    for (const dtype of KV_DTYPES) {
      const s = setup(c, 970, dtype);
      const softcap = 5;
      const at = (b: typeof ref | typeof native, cache: KvLayerCache, q: Float32Array) =>
        pagedAttention(b, cache, { ...s, q }, c.nHeads, c.headDim, { softcap });
      const plain = at(ref, s.refCache, s.q);
      const dot = dtype === "bf16" ? at(ref, s.refCache, roundedToBf16(s.q)) : plain;
      forEachVariant(
        native,
        (v) => {
          const { want, rtol, perToken } = expectationFor(dtype, c, plain, dot);
          const got = at(native, s.natCache, s.q);
          const what = `${v} ${dtype} heads ${c.nHeads}/${c.nKvHeads} softcap`;
          assertQueriesClose(got, want, c, dtype, what, rtol, perToken);
        },
        { emulated: true },
      );
    }
});
