// Decode-shaped products (batch 1) on weights in ggml block formats, as a share of the DRAM read
// bandwidth this same run measures with a plain streaming read, counting the quantized bytes (what
// the product must read). Weights rotate through enough matrices (--gib, default 1.5 GiB, past
// the last-level cache) to come from DRAM; each figure alternates with its stream read.
//
//   node dist/bench/kernels/quant-matvec.js [--rows 4096] [--cols 4096] [--type q8_0,q4_k,q4_0,q6_k]
//                                           [--threads 1,2] [--gib 1.5] [--variant avx512vnni,avx2] [--reps 5]
//
// --variant: quantized-product variants to compare (default: the one this CPU gets).
import { quantizeMatrix } from "../../src/convert/gguf-quantize.js";
import type { PreparedWeight } from "../../src/kernels/backend.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { QUANT_TYPES, type QuantType } from "../../src/model/tensor.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag, intListFlag } from "../common/flags.js";
import { bestAlternating, writeResults } from "../common/results.js";

const { values } = benchArgs({
  options: {
    rows: { type: "string", default: "4096" },
    cols: { type: "string", default: "4096" },
    type: { type: "string", default: "q8_0,q4_k,q4_0,q6_k" },
    threads: { type: "string", default: "1,2" },
    gib: { type: "string", default: "1.5" },
    variant: { type: "string" },
    reps: { type: "string", default: "5" },
  },
});
const reps = intFlag(values.reps, "reps");
const rows = intFlag(values.rows, "rows");
const cols = intFlag(values.cols, "cols");
const threadCounts = intListFlag(values.threads, "threads");
const workingSet = Number(values.gib) * 2 ** 30;
const types = values.type.split(",").map((t) => {
  if (!(QUANT_TYPES as readonly string[]).includes(t))
    throw new Error(`--type takes ${QUANT_TYPES.join(", ")}; got "${t}"`);
  return t as QuantType;
});

const backend = loadKernelBackend({ backend: "native" }) as NativeBackend;
const supported = backend.quantInfo().supported;
const variants = values.variant?.split(",") ?? [backend.quantInfo().variant];
for (const v of variants)
  if (!supported.includes(v))
    throw new Error(`--variant: "${v}" is not one this CPU runs (${supported.join(", ")})`);

/** Copies of one quantized matrix of smooth random values, together at least the working set. */
function rotatingQuant(type: QuantType): { prepared: PreparedWeight[]; bytes: number } {
  const x = new Float32Array(rows * cols);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * 0.05;
  const blocks = quantizeMatrix(type, x, cols);
  const count = Math.max(2, Math.ceil(workingSet / blocks.length));
  const prepared = Array.from({ length: count }, (_, i) => {
    const data = new Uint8Array(new SharedArrayBuffer(blocks.length));
    data.set(blocks); // touches every page
    return backend.prepareWeight({ name: `w${i}`, dtype: type, shape: [rows, cols], data });
  });
  return { prepared, bytes: blocks.length };
}

interface Row {
  threads: number;
  variant: string;
  type: string;
  bitsPerWeight: number;
  gbPerS: number;
  limitGbPerS: number;
  pctOfStream: number;
  usPerCall: number;
}
const results: Row[] = [];
const stream = new Float32Array(workingSet / 4).fill(1);
const x = new Float32Array(cols).map((_, i) => Math.cos(i));
const out = new Float32Array(rows);
for (const type of types) {
  const { prepared, bytes } = rotatingQuant(type);
  const pass = () => {
    for (const w of prepared) backend.matmul(out, x, w, 1);
  };
  for (const variant of variants) {
    backend.selectQuantVariant(variant);
    for (const threads of threadCounts) {
      backend.setThreads(threads);
      pass();
      const [tRead, tPass] = bestAlternating(reps, () => backend.streamRead(stream), pass) as [
        number,
        number,
      ];
      const limit = stream.byteLength / tRead / 1e9;
      const t = tPass / prepared.length;
      const gb = bytes / t / 1e9;
      results.push({
        threads,
        variant,
        type,
        bitsPerWeight: (8 * bytes) / (rows * cols),
        gbPerS: gb,
        limitGbPerS: limit,
        pctOfStream: (100 * gb) / limit,
        usPerCall: t * 1e6,
      });
    }
  }
  backend.selectQuantVariant(null);
}
results.sort((a, b) => a.threads - b.threads);

const cpu = cpuModel();
console.log(
  `${cpu}; ${backend.describe()}; weights and stream each span ${(workingSet / 2 ** 20).toFixed(0)} MiB`,
);
console.log("threads | variant    | type | bits/w |  GB/s | stream GB/s | % of stream | µs/call");
for (const r of results)
  console.log(
    `${String(r.threads).padStart(7)} | ${r.variant.padEnd(10)} | ${r.type} | ${r.bitsPerWeight.toFixed(2).padStart(6)} | ${r.gbPerS
      .toFixed(1)
      .padStart(
        5,
      )} | ${r.limitGbPerS.toFixed(1).padStart(11)} | ${r.pctOfStream.toFixed(0).padStart(11)} | ${r.usPerCall
      .toFixed(0)
      .padStart(7)}`,
  );

writeResults("kernels-quant-matvec.json", {
  cpu,
  backend: backend.describe(),
  rows,
  cols,
  workingSetBytes: workingSet,
  results,
});
