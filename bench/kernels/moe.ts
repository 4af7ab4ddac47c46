// Mixture-of-experts decode on the native kernels: one MoE layer (route, gather, grouped products
// per expert, combine; src/runtime/moe-runner.ts) at batches of 1, 8 and 32 tokens, against the
// bytes of expert weights the step actually reads (each chosen expert once, whatever number of
// its tokens) and the DRAM read bandwidth a plain streaming read reaches in the same run,
// alternating with it. Also shown: the bytes a per-token loop over experts would read (n·k
// experts), which grouping saves. Router logits are random, new for every repetition, so each
// step chooses experts afresh; the layer's shape defaults to Qwen3-30B-A3B's (hidden 2048,
// expert FFN 768, 128 experts, top-8): 1.2 GB of bf16 experts, past the last-level cache.
//
//   node dist/bench/kernels/moe.js [--experts 128] [--top-k 8] [--hidden 2048] [--inter 768]
//     [--batches 1,8,32] [--threads 2] [--reps 6] [--dtype bf16] [--variant avx2]
import { parseArgs } from "node:util";
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
import { intFlag, intListFlag } from "../common/flags.js";
import { timeOnce, writeResults } from "../common/results.js";

const { values } = parseArgs({
  options: {
    experts: { type: "string", default: "128" },
    "top-k": { type: "string", default: "8" },
    hidden: { type: "string", default: "2048" },
    inter: { type: "string", default: "768" },
    batches: { type: "string", default: "1,8,32" },
    threads: { type: "string", default: "2" },
    reps: { type: "string", default: "6" },
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
op.gate.forEach((n, e) => tensors.set(n, weight(n, inter, dim, 3 * e + 1)));
op.up.forEach((n, e) => tensors.set(n, weight(n, inter, dim, 3 * e + 2)));
op.down.forEach((n, e) => tensors.set(n, weight(n, dim, inter, 3 * e + 3)));
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
}
const rows: Row[] = [];
let seed = 7;
const rand = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32 - 0.5;
};
for (const n of batches) {
  const x = Float32Array.from({ length: n * dim }, rand);
  const logits = new Float32Array(n * E);
  const out = new Float32Array(n * dim);
  let best: Row | null = null;
  let bestStream = Number.POSITIVE_INFINITY;
  for (let r = 0; r <= reps; r++) {
    for (let i = 0; i < logits.length; i++) logits[i] = 4 * rand();
    const tStream = timeOnce(() => backend.streamRead(stream));
    const t = timeOnce(() => runMoe(backend, moe, scratch, out, x, logits, n, dim));
    if (r === 0) continue; // warm-up
    bestStream = Math.min(bestStream, tStream);
    let used = 0;
    for (let e = 0; e < E; e++) if (scratch.expertStart[e + 1]! > scratch.expertStart[e]!) used++;
    const gb = (used * expertBytes) / t / 1e9;
    if (!best || gb > best.gbPerS) {
      best = {
        batch: n,
        expertsRead: used,
        mbRead: (used * expertBytes) / 1e6,
        mbPerTokenLoop: (n * topK * expertBytes) / 1e6,
        usPerStep: t * 1e6,
        gbPerS: gb,
        streamGbPerS: 0,
        pctOfStream: 0,
        tokensPerS: n / t,
      };
    }
  }
  const limit = stream.byteLength / bestStream / 1e9;
  rows.push({ ...best!, streamGbPerS: limit, pctOfStream: (100 * best!.gbPerS) / limit });
}

console.log(`${cpuModel()}; ${backend.describe()}`);
console.log(
  `one MoE layer: ${E} experts of ${inter}x${dim} (${dtype}, ${(expertBytes / 1e6).toFixed(2)} MB each, ${((E * expertBytes) / 1e9).toFixed(2)} GB), top-${topK}, best of ${reps}`,
);
console.log(
  "batch | experts read | MB read | MB if per token |  µs/step | GB/s read | stream GB/s | % of stream | tokens/s",
);
for (const r of rows)
  console.log(
    `${String(r.batch).padStart(5)} | ${String(r.expertsRead).padStart(12)} | ${r.mbRead.toFixed(1).padStart(7)} | ${r.mbPerTokenLoop
      .toFixed(1)
      .padStart(
        15,
      )} | ${r.usPerStep.toFixed(0).padStart(8)} | ${r.gbPerS.toFixed(1).padStart(9)} | ${r.streamGbPerS
      .toFixed(1)
      .padStart(11)} | ${r.pctOfStream.toFixed(0).padStart(11)} | ${r.tokensPerS.toFixed(0).padStart(8)}`,
  );

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
