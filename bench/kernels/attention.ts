// Decode attention over a paged KV cache on the native kernels, as a share of the read bandwidth
// measured beside it (alternating repetitions) with a plain streaming read. Each sequence's
// blocks are scattered over the cache, as a block allocator leaves them.
//
//   node dist/bench/kernels/attention.js [--batch 8] [--ctx 4096,16384] [--heads 32] [--kv-heads 8,32]
//                                        [--head-dim 128] [--block 16,32,64] [--threads 1,2]
//                                        [--dtype f32,bf16,f16,int8] [--variant avx512bf16,avx512] [--reps 4]
//                                        [--huge-pages on|off] [--warm]
//
// --dtype int8: the bytes counted are the int8 K and V rows and their f32 scales (one per token
// and KV head, each); its target is 80% of the read (16-bit: MHA 90%, GQA 85%).
// --block: KV block sizes (tokens) to compare; --variant: compiled kernel variants to compare
// (default: the one this CPU gets), timed in turn with the streaming read within each repetition so
// load on a shared host falls on all of them; --reps: repetitions (each figure is the best);
// --warm: no streaming read between the calls, so a cache that fits in the last-level cache is
// read from there (the kernels' arithmetic rate; the limit column is then still DRAM's).
import { parseArgs } from "node:util";
import type { AttentionArgs, KvDType, KvLayerCache } from "../../src/kernels/backend.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { allocKvLayer, kvBytesPerHeadToken, parseKvDtype } from "../../src/kernels/kv-cache.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { f32ToBf16, f32ToF16 } from "../../src/model/tensor.js";
import { cpuModel } from "../common/cpu-model.js";
import { intFlag, intListFlag } from "../common/flags.js";
import { bestAlternating, writeResults } from "../common/results.js";

const { values } = parseArgs({
  options: {
    batch: { type: "string", default: "8" },
    ctx: { type: "string", default: "4096,16384" },
    heads: { type: "string", default: "32" },
    "kv-heads": { type: "string", default: "8,32" },
    "head-dim": { type: "string", default: "128" },
    block: { type: "string", default: "16" },
    threads: { type: "string", default: "1,2" },
    dtype: { type: "string", default: "f32,bf16" },
    variant: { type: "string" },
    reps: { type: "string", default: "4" },
    warm: { type: "boolean", default: false },
    "huge-pages": { type: "string", default: "on" },
  },
});
// on: the cache is advised for huge pages before it is first touched, as the engine's KV cache is.
const hugePages = values["huge-pages"];
if (hugePages !== "on" && hugePages !== "off")
  throw new Error(`--huge-pages must be on or off, got "${hugePages}"`);
const batch = intFlag(values.batch, "batch");
const contexts = intListFlag(values.ctx, "ctx");
const nHeads = intFlag(values.heads, "heads");
const headDim = intFlag(values["head-dim"], "head-dim");
const blockSizes = intListFlag(values.block, "block");
const threadCounts = intListFlag(values.threads, "threads");
const kvHeadCounts = intListFlag(values["kv-heads"], "kv-heads");
const reps = intFlag(values.reps, "reps");

const backend = loadKernelBackend({ backend: "native" }) as NativeBackend;
const variants = values.variant?.split(",") ?? [backend.info().variant];
for (const v of variants)
  if (!backend.info().supported.includes(v))
    throw new Error(`--variant: "${v}" is not one this CPU runs (${backend.info().supported.join(", ")})`);
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

interface Row {
  variant: string;
  blockSize: number;
  ctx: number;
  threads: number;
  kvDtype: KvDType;
  nKvHeads: number;
  limitGbPerS: number;
  gbPerS: number;
  pctOfLimit: number;
  msPerCall: number;
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
  for (let i = numBlocks - 1; i > 0; i--) {
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

/** One case on one thread count: every variant and the limit, alternating. */
function measure(args: AttentionArgs, blockSize: number, threads: number): Row[] {
  const { dtype, nKvHeads } = args.cache;
  const ctx = args.ctxEnd[0]!;
  const bytes = batch * ctx * nKvHeads * kvBytesPerHeadToken(dtype, headDim); // K, V (and int8's scales)
  backend.setThreads(threads);
  const calls = variants.map((v) => () => {
    backend.selectVariant(v);
    backend.attention(args);
  });
  for (const call of calls) call();
  // The calls and their limit alternate, best of `reps` each, so load on the host affects all. Each
  // call follows a streaming read (which evicts the last-level cache), so every variant starts
  // from the same cold cache: one straight after another would find a small cache warm.
  const read = () => backend.streamRead(stream);
  let tRead: number;
  let tAttn: number[];
  if (values.warm) {
    // The read measured on its own: between the calls it would evict what they read.
    tAttn = bestAlternating(reps, ...calls);
    tRead = bestAlternating(reps, read)[0]!;
  } else {
    const times = bestAlternating(reps, ...calls.flatMap((call) => [read, call]));
    tRead = Math.min(...times.filter((_, i) => i % 2 === 0));
    tAttn = times.filter((_, i) => i % 2 === 1);
  }
  const limit = stream.byteLength / tRead / 1e9;
  return variants.map((variant, i) => {
    const gb = bytes / tAttn[i]! / 1e9;
    return {
      variant,
      blockSize,
      ctx,
      threads,
      kvDtype: dtype,
      nKvHeads,
      limitGbPerS: limit,
      gbPerS: gb,
      pctOfLimit: (100 * gb) / limit,
      msPerCall: tAttn[i]! * 1e3,
      targetPct: dtype === "f32" ? null : dtype === "int8" ? 80 : nKvHeads === nHeads ? 90 : 85,
    };
  });
}

console.log(`${cpuModel()}; decode batch ${batch}, ${nHeads} heads, head_dim ${headDim}`);
console.log(
  "variant    | block | context | threads | kv heads | kv dtype | stream read GB/s | attention GB/s | % of stream read | target | ms/call",
);
for (const r of results)
  console.log(
    [
      r.variant.padEnd(10),
      String(r.blockSize).padStart(5),
      String(r.ctx).padStart(7),
      String(r.threads).padStart(7),
      String(r.nKvHeads).padStart(8),
      r.kvDtype.padStart(8),
      r.limitGbPerS.toFixed(1).padStart(16),
      r.gbPerS.toFixed(1).padStart(14),
      r.pctOfLimit.toFixed(0).padStart(16),
      (r.targetPct === null ? "" : `≥ ${r.targetPct}%`).padStart(6),
      r.msPerCall.toFixed(2).padStart(7),
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
  results,
});
