// Decode attention over a paged KV cache on the native kernels, as a share of the read bandwidth
// measured beside it (alternating repetitions) with a plain streaming read. Each sequence's
// blocks are scattered over the cache, as a block allocator leaves them.
//
//   node dist/bench/kernels/attention.js [--batch 8] [--ctx 4096,16384] [--heads 32] [--kv-heads 8,32]
//                                        [--head-dim 128] [--block 16,32,64] [--threads 1,2]
//                                        [--dtype f32,bf16,f16,int8] [--variant avx512bf16,avx512] [--reps 4]
//                                        [--huge-pages on|off] [--layout scattered|contiguous] [--warm]
//                                        [--calls 1] [--read-ahead default,on,off]
//
// --dtype int8: the bytes counted are the int8 K and V rows and their f32 scales (one per token
// and KV head, each); its target is 80% of the read (16-bit: MHA 90%, GQA 85%).
// --block: KV block sizes (tokens) to compare (default: the engine's); --variant: compiled kernel
// variants to compare (default: the one this CPU gets; avx512-novnni and avx2-novnni stand in for
// CPUs without VNNI, int8 through vpmaddubsw), timed in turn with the streaming read
// within each repetition so load on a shared host falls on all of them; --reps: repetitions (each
// figure is the best); --layout contiguous: each sequence's blocks in order, one after another,
// against the scattered default (to see what the scattering costs the hardware prefetcher); --warm:
// no streaming read between the calls, so a cache that fits in the last-level cache is read from
// there (the kernels' arithmetic rate; the limit column is then still DRAM's); --calls N (with
// --warm): each timing covers N calls back to back, divided by N, for a cache small enough to sit
// in L2, whose single call (tens of µs) the timer and the call's own cost would blur.
// --read-ahead: whether float caches' KV rows are asked for ahead in software (read_ahead_policy.h):
// "default" (what this CPU gets: on for Intel's), "on", "off", or a list to compare them in the same
// repetitions; each row's "reads" column says which ran ("ahead" or "hw"; by default the vdpbf16ps
// kernels ask ahead on every CPU, the other float kernels on Intel's, int8's byte products always).
//
// Beside the read limit each row states the arithmetic limit: the flops of the two products (q·K
// and p·V, 4 · query heads · head_dim per token) per byte of K and V read, against the peak of the
// instruction the variant's kernel multiplies with, measured on the same threads in the same
// repetitions (the vdpbf16ps loop where a bf16 cache with grouped queries goes through it, else
// the variant's FMA loop). Grouped queries do `group` times MHA's flops per byte. The no-overlap
// column, 1 / (1 / read + 1 / arithmetic), is the most a kernel computing at that peak would read
// if its reads and its arithmetic took turns: a target above it needs the two to overlap.
// int8 caches multiply through integer dot products no loop here measures: no arithmetic limit.
// And each row states the limit of its read pattern: the same call with nothing computed (the
// addon's attentionReadPattern: every K and V row the kernel reads, in its order, with its steps,
// read-ahead and prefetches), timed in the same repetitions; "% of pattern" is how much of what
// its own reads allow the kernel reaches (not for int8 on the portable build, which widens).
import type { AttentionArgs, KvDType, KvLayerCache } from "../../src/kernels/backend.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { allocKvLayer, kvBytesPerHeadToken, parseKvDtype } from "../../src/kernels/kv-cache.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { f32ToBf16, f32ToF16 } from "../../src/model/tensor.js";
import { DEFAULT_BLOCK_SIZE } from "../../src/placement/sizes.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag, intListFlag, readAheadFlag } from "../common/flags.js";
import { bestAlternating, writeResults } from "../common/results.js";
import { variantFlag } from "../common/variants.js";

const { values } = benchArgs({
  options: {
    batch: { type: "string", default: "8" },
    ctx: { type: "string", default: "4096,16384" },
    heads: { type: "string", default: "32" },
    "kv-heads": { type: "string", default: "8,32" },
    "head-dim": { type: "string", default: "128" },
    block: { type: "string", default: String(DEFAULT_BLOCK_SIZE) },
    threads: { type: "string", default: "1,2" },
    dtype: { type: "string", default: "f32,bf16" },
    variant: { type: "string" },
    reps: { type: "string", default: "4" },
    warm: { type: "boolean", default: false },
    calls: { type: "string", default: "1" },
    "huge-pages": { type: "string", default: "on" },
    layout: { type: "string", default: "scattered" },
    "read-ahead": { type: "string", default: "default" },
  },
});
// on: the cache is advised for huge pages before it is first touched, as the engine's KV cache is.
const hugePages = values["huge-pages"];
if (hugePages !== "on" && hugePages !== "off")
  throw new Error(`--huge-pages must be on or off, got "${hugePages}"`);
// scattered: each sequence's blocks in a shuffled order over the cache, as an allocator leaves them;
// contiguous: sequence s's blocks one after another (what the hardware prefetcher finds easiest).
const layout = values.layout;
if (layout !== "scattered" && layout !== "contiguous")
  throw new Error(`--layout must be scattered or contiguous, got "${layout}"`);
const batch = intFlag(values.batch, "batch");
const contexts = intListFlag(values.ctx, "ctx");
const nHeads = intFlag(values.heads, "heads");
const headDim = intFlag(values["head-dim"], "head-dim");
const blockSizes = intListFlag(values.block, "block");
const threadCounts = intListFlag(values.threads, "threads");
const kvHeadCounts = intListFlag(values["kv-heads"], "kv-heads");
const reps = intFlag(values.reps, "reps");
const callsPerTiming = intFlag(values.calls, "calls");
// Between cold calls the streaming read evicts the cache; calls back to back would find it warm.
if (callsPerTiming > 1 && !values.warm) throw new Error("--calls above 1 needs --warm");

const backend = loadKernelBackend({ backend: "native" }) as NativeBackend;
const readAheadModes = readAheadFlag(values["read-ahead"]);
/** What each row measures: a compiled variant with its KV reads asked for ahead or not. */
const arms = variantFlag(backend, values.variant).flatMap((variant) =>
  readAheadModes.map((readAhead) => ({ variant, readAhead })),
);
/** Selects an arm's variant and read-ahead. */
function selectArm(arm: (typeof arms)[number]): void {
  backend.selectVariant(arm.variant);
  backend.setReadAhead(arm.readAhead);
}
/**
 * Whether an arm's reads go ahead in software on a cache of `dtype`: the vdpbf16ps kernels
 * (attentionInstruction's) follow their own policy (readAheadBf16Dot), int8's byte products always.
 */
function armReadsAhead(arm: (typeof arms)[number], dtype: KvDType, group: number): boolean {
  const dot = attentionInstruction(arm.variant, dtype, group) === "vdpbf16ps";
  selectArm(arm);
  const i = backend.info();
  if (dtype === "int8") return i.int8Attention !== "widen"; // the byte-product paths always ask ahead
  return dot ? i.readAheadBf16Dot : i.readAhead;
}
const kvDtypes = values.dtype.split(",").map((d) => parseKvDtype(d, "--dtype"));

/** A cache of `numBlocks` blocks, every element 0.01 (int8: 1 × a scale of 0.01), advised as the engine's is. */
function filledCache(dtype: KvDType, numBlocks: number, blockSize: number, nKvHeads: number): KvLayerCache {
  const advise = hugePages === "on" ? (d: KvLayerCache["k"]) => void backend.adviseHugePages(d) : undefined;
  const c = allocKvLayer(dtype, numBlocks, blockSize, nKvHeads, headDim, advise);
  const fill = { f32: 0.01, bf16: f32ToBf16(0.01), f16: f32ToF16(0.01), int8: 1 }[dtype];
  c.k.fill(fill);
  c.v.fill(fill);
  c.kScale?.fill(0.01);
  c.vScale?.fill(0.01);
  return c;
}
const stream = new Float32Array(2 ** 28).fill(1); // 1 GiB, past the last-level cache
// Rounds of the peak loops (FMA, vdpbf16ps) per thread: a few ms of work on this class of machine.
const PEAK_ROUNDS = 200_000;

interface Row {
  variant: string;
  blockSize: number;
  ctx: number;
  threads: number;
  kvDtype: KvDType;
  /** Whether float caches' KV rows were asked for ahead in software (int8's dot products always are). */
  readAhead: boolean;
  nKvHeads: number;
  limitGbPerS: number;
  gbPerS: number;
  pctOfLimit: number;
  msPerCall: number;
  /** Flops of q·K and p·V per byte of KV read. */
  flopsPerByte: number;
  /** The instruction the kernel multiplies with, whose measured peak sets the arithmetic limit. */
  instruction: "vdpbf16ps" | "FMA" | null;
  peakGflops: number | null;
  /** peakGflops / flopsPerByte: the KV rate the arithmetic alone allows. */
  arithLimitGbPerS: number | null;
  /** gbPerS against arithLimitGbPerS (with --warm: how close the kernel runs to the instruction's peak). */
  pctOfArith: number | null;
  /** 1 / (1 / read + 1 / arithmetic): the rate with no overlap of reading and arithmetic. */
  noOverlapGbPerS: number | null;
  /** The same calls' reads alone (attentionReadPattern), in KV bytes a second; null for int8 on a widening path. */
  patternGbPerS: number | null;
  /** gbPerS against patternGbPerS: how much of what its own read pattern allows the kernel reaches. */
  pctOfPattern: number | null;
  /** The issues' target share of the read bandwidth: 16-bit KV MHA 90%, GQA 85%; int8 80%; null for f32. */
  targetPct: number | null;
}
const results: Row[] = [];

/** The attention call of one case: `batch` decode tokens over scattered blocks of a fresh cache. */
function attentionCase(ctx: number, nKvHeads: number, dtype: KvDType, blockSize: number): AttentionArgs {
  const blocksPerSeq = Math.ceil(ctx / blockSize);
  const numBlocks = batch * blocksPerSeq;
  const cache = filledCache(dtype, numBlocks, blockSize, nKvHeads);
  // Scatter: block i of sequence s is physical block perm[s * blocksPerSeq + i].
  const perm = Int32Array.from({ length: numBlocks }, (_, i) => i);
  let seed = 12345;
  for (let i = numBlocks - 1; layout === "scattered" && i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const j = seed % (i + 1);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  return {
    out: new Float32Array(batch * nHeads * headDim),
    q: new Float32Array(batch * nHeads * headDim).fill(0.1),
    cache,
    blockTables: perm,
    maxBlocksPerSeq: blocksPerSeq,
    qSeq: Int32Array.from({ length: batch }, (_, i) => i),
    ctxStart: new Int32Array(batch),
    ctxEnd: new Int32Array(batch).fill(ctx),
    nTokens: batch,
    nHeads,
    scale: 1 / Math.sqrt(headDim),
  };
}

for (const blockSize of blockSizes)
  for (const ctx of contexts)
    for (const nKvHeads of kvHeadCounts)
      for (const dtype of kvDtypes) {
        const args = attentionCase(ctx, nKvHeads, dtype, blockSize);
        for (const threads of threadCounts) results.push(...measure(args, blockSize, threads));
      }

/**
 * The instruction `variant`'s attention multiplies a `dtype` cache with, as attentionPart
 * (native/kernels/src/kernels.cpp) chooses: vdpbf16ps for a bf16 cache with grouped queries and
 * head_dim a multiple of 32 where the variant takes it for attention (avx512bf16; the addon's
 * bf16DotAttention), the widening FMA kernels otherwise; null for int8 (integer dot products).
 */
function attentionInstruction(variant: string, dtype: KvDType, group: number): Row["instruction"] {
  if (dtype === "int8") return null;
  backend.selectVariant(variant);
  return dtype === "bf16" && group >= 2 && headDim % 32 === 0 && backend.info().bf16DotAttention
    ? "vdpbf16ps"
    : "FMA";
}

/** One case on one thread count: every variant, the read limit and the arithmetic peaks, alternating. */
function measure(args: AttentionArgs, blockSize: number, threads: number): Row[] {
  const { dtype, nKvHeads } = args.cache;
  const ctx = args.ctxEnd[0]!;
  const bytes = batch * ctx * nKvHeads * kvBytesPerHeadToken(dtype, headDim); // K, V (and int8's scales)
  const flopsPerByte = (4 * nHeads * headDim) / (nKvHeads * kvBytesPerHeadToken(dtype, headDim));
  backend.setThreads(threads);
  const calls = arms.map((arm) => () => {
    selectArm(arm);
    for (let c = 0; c < callsPerTiming; c++) backend.attention(args);
  });
  // The same calls' reads alone (attentionReadPattern: the kernel's K and V rows, and int8's
  // scales, in its order, steps and read-ahead, nothing computed), the limit of the read pattern;
  // not for an int8 cache on a widening path (the portable build), which has no loads-only twin.
  const hasPattern = arms.map((arm) => {
    selectArm(arm);
    return dtype !== "int8" || backend.info().int8Attention !== "widen";
  });
  const patterns = arms
    .filter((_, i) => hasPattern[i])
    .map((arm) => () => {
      selectArm(arm);
      for (let c = 0; c < callsPerTiming; c++) backend.attentionReadPattern(args);
    });
  for (const call of [...calls, ...patterns]) call();
  // Each variant's instruction peak: a loop in registers, so it can run between a read and a call
  // without warming anything.
  const instructions = arms.map((arm) => attentionInstruction(arm.variant, dtype, nHeads / nKvHeads));
  const aheads = arms.map((arm) => armReadsAhead(arm, dtype, nHeads / nKvHeads));
  const peakFlops = arms.map(() => 0);
  const peaks = arms.map((arm, i) => () => {
    if (instructions[i] === null) return;
    backend.selectVariant(arm.variant);
    peakFlops[i] =
      instructions[i] === "vdpbf16ps" ? backend.bf16DotPeak(PEAK_ROUNDS) : backend.fmaPeak(PEAK_ROUNDS);
  });
  // The calls and their limits alternate, best of `reps` each, so load on the host affects all.
  // Each call follows a streaming read (which evicts the last-level cache), so every variant starts
  // from the same cold cache: one straight after another would find a small cache warm.
  const read = () => backend.streamRead(stream);
  let tRead: number;
  let tAttn: number[];
  let tPeak: number[];
  const timed = [...calls, ...patterns];
  if (values.warm) {
    // The read measured on its own: between the calls it would evict what they read.
    const times = bestAlternating(reps, ...peaks, ...timed);
    tPeak = times.slice(0, peaks.length);
    tAttn = times.slice(peaks.length).map((t) => t / callsPerTiming);
    tRead = bestAlternating(reps, read)[0]!;
  } else {
    const times = bestAlternating(reps, ...peaks, ...timed.flatMap((call) => [read, call]));
    tPeak = times.slice(0, peaks.length);
    const paired = times.slice(peaks.length);
    tRead = Math.min(...paired.filter((_, i) => i % 2 === 0));
    tAttn = paired.filter((_, i) => i % 2 === 1);
  }
  // The pattern timings follow the calls', one for each arm that has a pattern, in arm order.
  const tPatterns = tAttn.slice(calls.length);
  let next = 0;
  const tPattern = hasPattern.map((has) => (has ? tPatterns[next++] : undefined));
  const limit = stream.byteLength / tRead / 1e9;
  backend.setReadAhead(null);
  return arms.map(({ variant }, i) => {
    const gb = bytes / tAttn[i]! / 1e9;
    const peak = instructions[i] === null ? null : peakFlops[i]! / tPeak[i]! / 1e9;
    const pattern = tPattern[i] === undefined ? null : bytes / tPattern[i]! / 1e9;
    const arith = peak === null ? null : peak / flopsPerByte;
    return {
      variant,
      blockSize,
      ctx,
      threads,
      kvDtype: dtype,
      readAhead: aheads[i]!,
      nKvHeads,
      limitGbPerS: limit,
      gbPerS: gb,
      pctOfLimit: (100 * gb) / limit,
      msPerCall: tAttn[i]! * 1e3,
      flopsPerByte,
      instruction: instructions[i]!,
      peakGflops: peak,
      arithLimitGbPerS: arith,
      pctOfArith: arith === null ? null : (100 * gb) / arith,
      noOverlapGbPerS: arith === null ? null : 1 / (1 / limit + 1 / arith),
      patternGbPerS: pattern,
      pctOfPattern: pattern === null ? null : (100 * gb) / pattern,
      targetPct: dtype === "f32" ? null : dtype === "int8" ? 80 : nKvHeads === nHeads ? 90 : 85,
    };
  });
}

console.log(`${cpuModel()}; decode batch ${batch}, ${nHeads} heads, head_dim ${headDim}`);
console.log(
  "variant    | block | context | threads | kv heads | kv dtype | reads | stream read GB/s | attention GB/s | % of stream read | target | ms/call | flop/B | instruction | peak GFLOP/s | arith limit GB/s | % of arith | no-overlap GB/s | pattern GB/s | % of pattern",
);
const fixed = (x: number | null, width: number) => (x === null ? "–" : x.toFixed(1)).padStart(width);
for (const r of results)
  console.log(
    [
      r.variant.padEnd(10),
      String(r.blockSize).padStart(5),
      String(r.ctx).padStart(7),
      String(r.threads).padStart(7),
      String(r.nKvHeads).padStart(8),
      r.kvDtype.padStart(8),
      (r.readAhead ? "ahead" : "hw").padStart(5),
      r.limitGbPerS.toFixed(1).padStart(16),
      r.gbPerS.toFixed(1).padStart(14),
      r.pctOfLimit.toFixed(0).padStart(16),
      (r.targetPct === null ? "" : `≥ ${r.targetPct}%`).padStart(6),
      r.msPerCall.toFixed(2).padStart(7),
      r.flopsPerByte.toFixed(1).padStart(6),
      (r.instruction ?? "–").padStart(11),
      fixed(r.peakGflops, 12),
      fixed(r.arithLimitGbPerS, 16),
      (r.pctOfArith === null ? "–" : r.pctOfArith.toFixed(0)).padStart(10),
      fixed(r.noOverlapGbPerS, 15),
      fixed(r.patternGbPerS, 12),
      (r.pctOfPattern === null ? "–" : r.pctOfPattern.toFixed(0)).padStart(12),
    ].join(" | "),
  );

writeResults("kernels-attention.json", {
  cpu: cpuModel(),
  backend: backend.describe(),
  batch,
  contexts,
  nHeads,
  headDim,
  blockSizes,
  layout,
  warm: values.warm,
  callsPerTiming,
  results,
});
