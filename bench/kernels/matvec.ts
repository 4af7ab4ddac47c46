// Decode-shaped matrix-vector products (batch 1) on the native kernels, as a share of the DRAM
// read bandwidth this same run measures with a plain streaming read. Weights rotate through
// enough matrices (--gib, default 1.5 GiB, past the last-level cache) to come from DRAM.
//
//   node dist/bench/kernels/matvec.js [--rows 4096] [--cols 4096] [--threads 1,2] [--gib 1.5] [--variant avx2]
//                                     [--read-ahead default,on,off]
//
// --read-ahead: whether the weight rows are asked for ahead in software (read_ahead_policy.h):
// "default" (what this CPU gets: on for Intel's), "on", "off", or a list to compare them in the
// same repetitions.
import { loadKernelBackend } from "../../src/kernels/index.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { bytesPerElement } from "../../src/model/tensor.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag, intListFlag, readAheadFlag } from "../common/flags.js";
import { bestAlternating, writeResults } from "../common/results.js";
import { rotatingWeights } from "./weights.js";

const { values } = benchArgs({
  options: {
    rows: { type: "string", default: "4096" },
    cols: { type: "string", default: "4096" },
    threads: { type: "string", default: "1,2" },
    gib: { type: "string", default: "1.5" },
    variant: { type: "string" },
    "read-ahead": { type: "string", default: "default" },
  },
});
const readAheadModes = readAheadFlag(values["read-ahead"]);
const rows = intFlag(values.rows, "rows");
const cols = intFlag(values.cols, "cols");
const threadCounts = intListFlag(values.threads, "threads");
const workingSet = Number(values.gib) * 2 ** 30;

const backend = loadKernelBackend({ backend: "native" }) as NativeBackend;
if (values.variant) backend.selectVariant(values.variant);

interface Row {
  threads: number;
  what: string;
  gbPerS: number;
  pctOfDram: number;
  usPerCall: number;
}
const results: Row[] = [];

// Each matvec figure is paired with a stream-read limit measured right beside it (alternating
// repetitions), so that other load on the machine affects both alike. Weights are allocated one
// dtype at a time to bound memory.
const stream = new Float32Array(workingSet / 4).fill(1);
const x = new Float32Array(cols).fill(1);
const out = new Float32Array(rows);
for (const dtype of ["f32", "bf16", "f16"] as const) {
  const bytes = rows * cols * bytesPerElement(dtype);
  const prepared = rotatingWeights(backend, dtype, rows, cols, workingSet, 0.5);
  const passes = readAheadModes.map((mode) => () => {
    backend.setReadAhead(mode);
    for (const w of prepared) backend.matmul(out, x, w, 1);
  });
  const aheads = readAheadModes.map((mode) => {
    backend.setReadAhead(mode);
    return backend.info().readAhead;
  });
  for (const threads of threadCounts) {
    backend.setThreads(threads);
    for (const pass of passes) pass();
    const [tRead, ...tPasses] = bestAlternating(4, () => backend.streamRead(stream), ...passes);
    const limit = stream.byteLength / tRead! / 1e9;
    results.push({
      threads,
      what: `stream read (limit, ${dtype} run)`,
      gbPerS: limit,
      pctOfDram: 100,
      usPerCall: Number.NaN,
    });
    tPasses.forEach((tPass, i) => {
      const t = tPass / prepared.length;
      const gb = bytes / t / 1e9;
      results.push({
        threads,
        what: `matvec ${rows}x${cols} ${dtype}${aheads[i] ? " (ahead)" : ""}`,
        gbPerS: gb,
        pctOfDram: (100 * gb) / limit,
        usPerCall: t * 1e6,
      });
    });
  }
}
backend.setReadAhead(null);
results.sort((a, b) => a.threads - b.threads);

console.log(
  `${cpuModel()}; ${backend.describe()}; stream and weights each span ${(workingSet / 2 ** 20).toFixed(0)} MiB`,
);
console.log("threads | what                            |   GB/s | % of stream read | µs/call");
for (const r of results)
  console.log(
    `${String(r.threads).padStart(7)} | ${r.what.padEnd(31)} | ${r.gbPerS.toFixed(1).padStart(6)} | ${r.pctOfDram
      .toFixed(0)
      .padStart(16)} | ${Number.isNaN(r.usPerCall) ? "" : r.usPerCall.toFixed(0).padStart(7)}`,
  );

writeResults("kernels-matvec.json", {
  cpu: cpuModel(),
  backend: backend.describe(),
  info: backend.info(),
  rows,
  cols,
  workingSetBytes: workingSet,
  results,
});
