// Mixture-of-experts decode on the native kernels: one MoE layer (route, gather, grouped products
// per expert, combine; src/runtime/moe-runner.ts) at batches of 1, 8 and 32 tokens, against the
// bytes of expert weights the step actually reads (each chosen expert once, whatever number of
// its tokens) and the DRAM read bandwidth a plain streaming read reaches in the same run,
// alternating with it. Also shown: the bytes a per-token loop over experts would read (n·k
// experts), which grouping saves, and, from a second run of each step's calls one by one, the time
// of the three grouped products and of the rest (route, gather, SiLU·mul, combine). Router logits
// are random, new for every repetition, so each step chooses experts afresh; each repetition is
// measured against its own streaming read and the median one is reported; the layer's shape
// defaults to Qwen3-30B-A3B's (hidden 2048, expert FFN 768, 128 experts, top-8): 1.2 GB of bf16
// experts, past the last-level cache.
//
//   node dist/bench/kernels/moe.js [--experts 128] [--top-k 8] [--hidden 2048] [--inter 768]
//     [--batches 1,8,32] [--threads 2] [--reps 9] [--dtype bf16] [--variant avx2]
import type { Op } from "../../src/graph/ops.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import {
  allocTensorData,
  bytesPerElement,
  type DType,
  f32ToBf16,
  f32ToF16,
  type Tensor,
} from "../../src/model/tensor.js";
import { MoeScratch, prepareMoe, runMoe } from "../../src/runtime/moe-runner.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag, intListFlag } from "../common/flags.js";
import { timeOnce, writeResults } from "../common/results.js";

const { values } = benchArgs({
  options: {
    experts: { type: "string", default: "128" },
    "top-k": { type: "string", default: "8" },
    hidden: { type: "string", default: "2048" },
    inter: { type: "string", default: "768" },
    batches: { type: "string", default: "1,8,32" },
    threads: { type: "string", default: "2" },
    reps: { type: "string", default: "9" },
    dtype: { type: "string", default: "bf16" },
    variant: { type: "string" },
  },
});
const E = intFlag(values.experts, "experts");
const topK = intFlag(values["top-k"], "top-k");
const dim = intFlag(values.hidden, "hidden");
const inter = intFlag(values.inter, "inter");
const batches = intListFlag(values.batches, "batches");
const threads = intFlag(values.threads, "threads");
const reps = intFlag(values.reps, "reps");
if (!["f32", "bf16", "f16"].includes(values.dtype!))
  throw new Error(`--dtype: f32, bf16 or f16, not ${values.dtype}`);
const dtype = values.dtype as DType;
if (topK > E) throw new Error(`--top-k ${topK} exceeds --experts ${E}`);

const backend = loadKernelBackend({ backend: "native" }) as NativeBackend;
if (values.variant) backend.selectVariant(values.variant);
backend.setThreads(threads);

/** A deterministic pseudo-random weight (values of order 1/√cols), every page touched. */
function weight(name: string, rows: number, cols: number, seed: number): Tensor {
  const data = allocTensorData(dtype, rows * cols);
  let s = seed >>> 0;
  const scale = 1 / Math.sqrt(cols);
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const v = ((s >>> 8) / 2 ** 24 - 0.5) * 2 * scale;
    data[i] = dtype === "f32" ? v : dtype === "bf16" ? f32ToBf16(v) : f32ToF16(v);
  }
  return { name, dtype, shape: [rows, cols], data };
}

const names = (part: string) => Array.from({ length: E }, (_, e) => `experts.${e}.${part}`);
const op: Extract<Op, { kind: "moe" }> = {
  kind: "moe",
  out: "out",
  x: "x",
  logits: "logits",
  gate: names("gate"),
  up: names("up"),
  down: names("down"),
  topK,
  normalizeTopK: true,
  hidden: inter,
};
const tensors = new Map<string, Tensor>();
for (let e = 0; e < E; e++) {
  tensors.set(op.gate[e]!, weight(op.gate[e]!, inter, dim, 3 * e + 1));
  tensors.set(op.up[e]!, weight(op.up[e]!, inter, dim, 3 * e + 2));
  tensors.set(op.down[e]!, weight(op.down[e]!, dim, inter, 3 * e + 3));
}
const moe = prepareMoe(backend, op, (n) => tensors.get(n)!);
const expertBytes = 3 * inter * dim * bytesPerElement(dtype);
const maxBatch = Math.max(...batches);
const scratch = new MoeScratch([moe], maxBatch, dim);
const stream = new Float32Array(Math.ceil((E * expertBytes) / 4)).fill(1);

interface Row {
  batch: number;
  expertsRead: number;
  mbRead: number;
  mbPerTokenLoop: number;
  usPerStep: number;
  gbPerS: number;
  streamGbPerS: number;
  pctOfStream: number;
  tokensPerS: number;
  /** From a second, phased run of the same step: the three grouped products, and the rest. */
  productsUs: number;
  productsGbPerS: number;
  otherUs: number;
}
const rows: Row[] = [];

/** runMoe's calls one by one (moe-runner.ts), timed: [the grouped products, the rest] in seconds. */
function phased(n: number, x: Float32Array, logits: Float32Array, out: Float32Array): [number, number] {
  const s = scratch;
  const rowsN = n * topK;
  const other0 = timeOnce(() => {
    backend.moeRoute({
      logits,
      nTokens: n,
      nExperts: E,
      topK,
      normalizeTopK: true,
      slotWeight: s.slotWeight,
      slotRow: s.slotRow,
      rowToken: s.rowToken,
      expertStart: s.expertStart,
    });
    backend.gatherRows(s.rowsIn, x, s.rowToken, rowsN, dim);
  });
  const p0 = timeOnce(() => {
    backend.groupedMatmul(s.gate, s.rowsIn, moe.gate, s.expertStart);
    backend.groupedMatmul(s.up, s.rowsIn, moe.up, s.expertStart);
  });
  const other1 = timeOnce(() => backend.siluMul(s.gate, s.gate, s.up, rowsN * inter));
  const p1 = timeOnce(() => backend.groupedMatmul(s.rowsIn, s.gate, moe.down, s.expertStart));
  const other2 = timeOnce(() => backend.moeCombine(out, s.rowsIn, s.slotRow, s.slotWeight, n, topK, dim));
  return [p0 + p1, other0 + other1 + other2];
}
let seed = 7;
const rand = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32 - 0.5;
};
/** Experts the last routing chose. */
function expertsChosen(): number {
  let used = 0;
  for (let e = 0; e < E; e++) if (scratch.expertStart[e + 1]! > scratch.expertStart[e]!) used++;
  return used;
}

/**
 * One repetition: a streaming read, the step, then the step's calls one by one (new routing
 * each), every figure against the streaming read just before it.
 */
function repetition(n: number, x: Float32Array, logits: Float32Array, out: Float32Array): Row {
  for (let i = 0; i < logits.length; i++) logits[i] = 4 * rand();
  const tStream = timeOnce(() => backend.streamRead(stream));
  const t = timeOnce(() => runMoe(backend, moe, scratch, out, x, logits, n, dim));
  const used = expertsChosen();
  for (let i = 0; i < logits.length; i++) logits[i] = 4 * rand();
  const [products, other] = phased(n, x, logits, out);
  const limit = stream.byteLength / tStream / 1e9;
  const gb = (used * expertBytes) / t / 1e9;
  return {
    batch: n,
    expertsRead: used,
    mbRead: (used * expertBytes) / 1e6,
    mbPerTokenLoop: (n * topK * expertBytes) / 1e6,
    usPerStep: t * 1e6,
    gbPerS: gb,
    streamGbPerS: limit,
    pctOfStream: (100 * gb) / limit,
    tokensPerS: n / t,
    productsUs: products * 1e6,
    productsGbPerS: (expertsChosen() * expertBytes) / products / 1e9,
    otherUs: other * 1e6,
  };
}

// On a shared host the load changes from one repetition to the next: each repetition's figures are
// taken against its own streaming read, and the repetition with the median share is reported.
for (const n of batches) {
  const x = Float32Array.from({ length: n * dim }, rand);
  const logits = new Float32Array(n * E);
  const out = new Float32Array(n * dim);
  repetition(n, x, logits, out); // warm-up
  const all = Array.from({ length: reps }, () => repetition(n, x, logits, out));
  all.sort((a, b) => a.pctOfStream - b.pctOfStream);
  rows.push(all[Math.floor(all.length / 2)]!);
}

console.log(`${cpuModel()}; ${backend.describe()}`);
console.log(
  `one MoE layer: ${E} experts of ${inter}x${dim} (${dtype}, ${(expertBytes / 1e6).toFixed(2)} MB each, ${((E * expertBytes) / 1e9).toFixed(2)} GB), top-${topK}, the median of ${reps} repetitions by share of the streaming read`,
);
const cols: [string, (r: Row) => string][] = [
  ["batch", (r) => String(r.batch)],
  ["experts read", (r) => String(r.expertsRead)],
  ["MB read", (r) => r.mbRead.toFixed(1)],
  ["MB if per token", (r) => r.mbPerTokenLoop.toFixed(1)],
  ["µs/step", (r) => r.usPerStep.toFixed(0)],
  ["GB/s read", (r) => r.gbPerS.toFixed(1)],
  ["stream GB/s", (r) => r.streamGbPerS.toFixed(1)],
  ["% of stream", (r) => r.pctOfStream.toFixed(0)],
  ["tokens/s", (r) => r.tokensPerS.toFixed(0)],
  ["products µs (GB/s)", (r) => `${r.productsUs.toFixed(0)} (${r.productsGbPerS.toFixed(1)})`],
  ["other µs", (r) => r.otherUs.toFixed(0)],
];
console.log(cols.map(([h]) => h).join(" | "));
for (const r of rows) console.log(cols.map(([h, f]) => f(r).padStart(h.length)).join(" | "));

writeResults("kernels-moe.json", {
  cpu: cpuModel(),
  backend: backend.describe(),
  info: backend.info(),
  experts: E,
  topK,
  hidden: dim,
  expertIntermediate: inter,
  dtype,
  threads,
  expertBytes,
  results: rows,
});
