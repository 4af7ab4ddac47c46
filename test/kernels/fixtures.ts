import assert from "node:assert/strict";
import type { AttentionArgs, KernelBackend, KvDType, KvLayerCache } from "../../src/kernels/backend.js";
import { allocKvLayer } from "../../src/kernels/kv-cache.js";
import type { DType, FloatTensor } from "../../src/model/tensor.js";
import { allocTensorData, f32ToBf16, f32ToF16 } from "../../src/model/tensor.js";
import { SeededRandom } from "../../src/util/seeded-random.js";

/** Deterministic uniform numbers in [-1, 1) (mulberry32), so failures reproduce. */
export function rng(seed: number): () => number {
  const r = new SeededRandom(seed);
  return () => r.next() * 2 - 1;
}

export function randomF32(n: number, rand: () => number, scale = 1): Float32Array {
  const a = new Float32Array(new SharedArrayBuffer(n * 4));
  for (let i = 0; i < n; i++) a[i] = rand() * scale;
  return a;
}

export function randomTensor(
  name: string,
  dtype: DType,
  shape: number[],
  rand: () => number,
  scale = 1,
): FloatTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = allocTensorData(dtype, n);
  for (let i = 0; i < n; i++) {
    const v = rand() * scale;
    data[i] = dtype === "f32" ? v : dtype === "bf16" ? f32ToBf16(v) : f32ToF16(v);
  }
  return { name, dtype, shape, data };
}

export function emptyCache(
  dtype: KvDType,
  numBlocks: number,
  blockSize: number,
  nKvHeads: number,
  headDim: number,
): KvLayerCache {
  return allocKvLayer(dtype, numBlocks, blockSize, nKvHeads, headDim);
}

/**
 * Asserts |actual - expected| <= rtol * (|expected| + max|expected|) elementwise: relative to the
 * element, with a floor relative to the row's scale so sums that cancel to ~0 do not fail on
 * rounding alone.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
  rtol = 1e-5,
  n = expected.length,
): void {
  let scale = 0;
  for (let i = 0; i < n; i++)
    if (Number.isFinite(expected[i]!)) scale = Math.max(scale, Math.abs(expected[i]!));
  for (let i = 0; i < n; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!Number.isFinite(e)) {
      assert.equal(a, e, `${what}[${i}]: expected ${e}, got ${a}`);
      continue;
    }
    const tol = rtol * (Math.abs(e) + scale) + 1e-30;
    if (!(Math.abs(a - e) <= tol)) assert.fail(`${what}[${i}]: expected ${e}, got ${a} (tolerance ${tol})`);
  }
}

/** A random paged layout: sequences of the given lengths spread over shuffled physical blocks. */
/** An attention case's heads and cache geometry. */
export interface AttentionShape {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  blockSize: number;
}

export interface PagedLayout {
  numBlocks: number;
  blockSize: number;
  maxBlocksPerSeq: number;
  blockTables: Int32Array;
  seqLens: number[];
  /** The cache slot of (sequence, position). */
  slot(seq: number, pos: number): number;
}

export function pagedLayout(seqLens: number[], blockSize: number, rand: () => number): PagedLayout {
  const maxBlocksPerSeq = Math.max(...seqLens.map((l) => Math.ceil(l / blockSize))) + 1;
  const needed = seqLens.reduce((s, l) => s + Math.ceil(l / blockSize), 0);
  const numBlocks = needed + 3; // a few blocks nobody owns
  const ids = Array.from({ length: numBlocks }, (_, i) => i);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(((rand() + 1) / 2) * (i + 1));
    [ids[i], ids[j]] = [ids[j]!, ids[i]!];
  }
  // Unused entries hold garbage on purpose: kernels must not read them.
  const blockTables = new Int32Array(seqLens.length * maxBlocksPerSeq).fill(-7);
  let next = 0;
  seqLens.forEach((len, s) => {
    for (let b = 0; b < Math.ceil(len / blockSize); b++) blockTables[s * maxBlocksPerSeq + b] = ids[next++]!;
  });
  return {
    numBlocks,
    blockSize,
    maxBlocksPerSeq,
    blockTables,
    seqLens,
    slot: (seq, pos) =>
      blockTables[seq * maxBlocksPerSeq + Math.floor(pos / blockSize)]! * blockSize + (pos % blockSize),
  };
}

/** Fills a cache with random K/V for every position of every sequence, through kvWrite. */
export function fillCache(
  backend: KernelBackend,
  cache: KvLayerCache,
  layout: PagedLayout,
  rand: () => number,
): void {
  const width = cache.nKvHeads * cache.headDim;
  layout.seqLens.forEach((len, s) => {
    const k = randomF32(len * width, rand);
    const v = randomF32(len * width, rand);
    const slots = new Int32Array(len);
    for (let p = 0; p < len; p++) slots[p] = layout.slot(s, p);
    backend.kvWrite(cache, k, v, slots, len);
  });
}

/** Query tokens over a paged layout: the sequence each reads, its key range [ctxStart, ctxEnd) and q. */
export interface PagedQueries {
  readonly layout: PagedLayout;
  readonly q: Float32Array;
  readonly qSeq: Int32Array;
  readonly ctxStart: Int32Array;
  readonly ctxEnd: Int32Array;
  readonly n: number;
}

/** The query ranges `build` adds, one `add(seq, start, end)` per query token. */
export function queryRanges(build: (add: (seq: number, start: number, end: number) => void) => void) {
  const qSeq: number[] = [];
  const start: number[] = [];
  const end: number[] = [];
  build((s, a, b) => {
    qSeq.push(s);
    start.push(a);
    end.push(b);
  });
  return {
    qSeq: new Int32Array(qSeq),
    ctxStart: new Int32Array(start),
    ctxEnd: new Int32Array(end),
    n: qSeq.length,
  };
}

/** What pagedAttention accepts beside the queries: `scale`, `softcap` and replacement ranges. */
export interface PagedAttentionOptions {
  scale?: number;
  softcap?: number;
  ctxStart?: Int32Array | undefined;
  ctxEnd?: Int32Array | undefined;
}

/**
 * The attention call of the queries over `cache` (outputs filled with NaN, so a row the kernel
 * leaves unwritten shows). `scale` defaults to 1/√headDim; `ctxStart` and `ctxEnd` replace the
 * queries' own ranges.
 */
export function pagedAttentionArgs(
  cache: KvLayerCache,
  s: PagedQueries,
  nHeads: number,
  headDim: number,
  o: PagedAttentionOptions = {},
): AttentionArgs & { lse: Float32Array } {
  return {
    out: new Float32Array(s.n * nHeads * headDim).fill(Number.NaN),
    q: s.q,
    cache,
    blockTables: s.layout.blockTables,
    maxBlocksPerSeq: s.layout.maxBlocksPerSeq,
    qSeq: s.qSeq,
    ctxStart: o.ctxStart ?? s.ctxStart,
    ctxEnd: o.ctxEnd ?? s.ctxEnd,
    nTokens: s.n,
    nHeads,
    scale: o.scale ?? 1 / Math.sqrt(headDim),
    ...(o.softcap === undefined ? {} : { softcap: o.softcap }),
    lse: new Float32Array(s.n * nHeads).fill(Number.NaN),
  };
}

/** Paged attention of the queries over `cache` with their log-sum-exp (see pagedAttentionArgs). */
export function pagedAttention(
  b: KernelBackend,
  cache: KvLayerCache,
  s: PagedQueries,
  nHeads: number,
  headDim: number,
  o: PagedAttentionOptions = {},
): { out: Float32Array; lse: Float32Array } {
  const args = pagedAttentionArgs(cache, s, nHeads, headDim, o);
  b.attention(args);
  return { out: args.out, lse: args.lse };
}
