// Batched products (prefill chunks, decode batches) on weights in ggml block formats, side by side
// with the same product on bf16 weights (the path a Hugging Face bf16 model takes), alternating in
// every repetition, and as a share of the FMA peak this run measures on the same threads (the
// quantized products multiply bytes, but the FMA peak is the yardstick the float products are held
// to). Weights rotate through --gib (default 0.5 GiB) so they come from DRAM. With batch 1 in
// --batch, each batch's time is also given as a multiple of one token's on the same format and
// threads: one token reads the weights, which no batch can avoid, so small batches (the row paths
// that take a few tokens at once) are held to that.
//
//   node dist/bench/kernels/quant-matmul.js [--rows 4096] [--cols 4096] [--batch 8,32,128]
//                                           [--type q8_0,q4_k] [--threads 1] [--gib 0.5] [--reps 5]
import { quantizeMatrix } from "../../src/convert/gguf-quantize.js";
import type { PreparedWeight } from "../../src/kernels/backend.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { QUANT_TYPES, type QuantType } from "../../src/model/tensor.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag, intListFlag } from "../common/flags.js";
import { bestAlternating, writeResults } from "../common/results.js";
import { rotatingWeights } from "./weights.js";

const { values } = benchArgs({
  options: {
    rows: { type: "string", default: "4096" },
    cols: { type: "string", default: "4096" },
    batch: { type: "string", default: "8,32,128" },
    type: { type: "string", default: "q8_0,q4_k" },
    threads: { type: "string", default: "1" },
    gib: { type: "string", default: "0.5" },
    reps: { type: "string", default: "5" },
  },
});
const rows = intFlag(values.rows, "rows");
const cols = intFlag(values.cols, "cols");
const batches = intListFlag(values.batch, "batch");
const threadCounts = intListFlag(values.threads, "threads");
const reps = intFlag(values.reps, "reps");
const workingSet = Number(values.gib) * 2 ** 30;
const types = values.type.split(",").map((t) => {
  if (!(QUANT_TYPES as readonly string[]).includes(t))
    throw new Error(`--type takes ${QUANT_TYPES.join(", ")}; got "${t}"`);
  return t as QuantType;
});

const backend = loadKernelBackend({ backend: "native" }) as NativeBackend;

function rotatingQuant(type: QuantType): PreparedWeight[] {
  const x = new Float32Array(rows * cols);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * 0.05;
  const blocks = quantizeMatrix(type, x, cols);
  return Array.from({ length: Math.max(2, Math.ceil(workingSet / blocks.length)) }, (_, i) => {
    const data = new Uint8Array(new SharedArrayBuffer(blocks.length));
    data.set(blocks);
    return backend.prepareWeight({ name: `w${i}`, dtype: type, shape: [rows, cols], data });
  });
}

interface Row {
  threads: number;
  type: string;
  batch: number;
  ms: number;
  bf16Ms: number;
  gflops: number;
  fmaPeakGflops: number;
  pctOfFmaPeak: number;
  /** The batch's time over one token's on the same weights and threads (the read of the weights,
   *  which a batch cannot go below), where this run has batch 1; null otherwise. */
  perOneToken: number | null;
}
const results: Row[] = [];
const bf16 = rotatingWeights(backend, "bf16", rows, cols, workingSet, 0.01);
const PEAK_ROUNDS = 2_000_000;
for (const type of types) {
  const quant = rotatingQuant(type);
  for (const threads of threadCounts) {
    backend.setThreads(threads);
    for (const batch of batches) {
      const x = new Float32Array(batch * cols).map((_, i) => Math.cos(i));
      const out = new Float32Array(batch * rows);
      const pass = (ws: PreparedWeight[]) => () => {
        for (const w of ws) backend.matmul(out, x, w, batch);
      };
      let flops = 0;
      const [tq, tb, tp] = bestAlternating(reps, pass(quant), pass(bf16), () => {
        flops = backend.fmaPeak(PEAK_ROUNDS);
      }) as [number, number, number];
      const ms = (1e3 * tq) / quant.length;
      const gflops = (2 * rows * cols * batch) / (ms * 1e6);
      const peak = flops / tp / 1e9;
      results.push({
        threads,
        type,
        batch,
        ms,
        bf16Ms: (1e3 * tb) / bf16.length,
        gflops,
        fmaPeakGflops: peak,
        pctOfFmaPeak: (100 * gflops) / peak,
        perOneToken: null,
      });
    }
  }
}

for (const r of results) {
  const one = results.find((o) => o.type === r.type && o.threads === r.threads && o.batch === 1);
  r.perOneToken = one ? r.ms / one.ms : null;
}

const cpu = cpuModel();
console.log(`${cpu}; ${backend.describe()}; quantized: ${backend.quantInfo().variant}; ${rows}x${cols}`);
console.log("threads | type | batch |     ms | bf16 ms | GFLOP/s | FMA peak | % of FMA peak | × 1 token");
for (const r of results)
  console.log(
    `${String(r.threads).padStart(7)} | ${r.type} | ${String(r.batch).padStart(5)} | ${r.ms.toFixed(2).padStart(6)} | ${r.bf16Ms
      .toFixed(2)
      .padStart(
        7,
      )} | ${r.gflops.toFixed(1).padStart(7)} | ${r.fmaPeakGflops.toFixed(0).padStart(8)} | ${r.pctOfFmaPeak
      .toFixed(0)
      .padStart(13)} | ${r.perOneToken === null ? "        –" : `${r.perOneToken.toFixed(2)}×`.padStart(9)}`,
  );
writeResults("kernels-quant-matmul.json", { cpu, backend: backend.describe(), rows, cols, results });
