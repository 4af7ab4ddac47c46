// What packing a weight 16 rows a vector (prepareWeight's copy for the packed row path) costs at
// load, against a plain copy of the same bytes into the same kind of memory in the same run: into
// a fresh allocation (the page faults of new memory, as at load), into one advised to huge pages
// (as prepareWeight does), and into memory already touched (the permutation alone). The pack runs
// on the kernel pool's threads, the copy (TypedArray.set) on one.
//
//   node dist/bench/kernels/quant-pack.js [--rows 65536] [--cols 1024] [--type q8_0,q5_0] [--threads 2] [--reps 3]
import { quantizeMatrix } from "../../src/convert/gguf-quantize.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { loadNativeAddon, QUANT_CODE } from "../../src/kernels/native-addon.js";
import { allocSharedBytes, QUANT_TYPES, type QuantType } from "../../src/model/tensor.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { bestAlternating, writeResults } from "../common/results.js";

const { values } = benchArgs({
  options: {
    rows: { type: "string", default: "65536" },
    cols: { type: "string", default: "1024" },
    type: { type: "string", default: "q8_0,q5_0" },
    threads: { type: "string", default: "2" },
    reps: { type: "string", default: "3" },
  },
});
const rows = intFlag(values.rows, "rows");
const cols = intFlag(values.cols, "cols");
const reps = intFlag(values.reps, "reps");
const types = values.type.split(",").map((t) => {
  if (!(QUANT_TYPES as readonly string[]).includes(t))
    throw new Error(`--type takes ${QUANT_TYPES.join(", ")}; got "${t}"`);
  return t as QuantType;
});
const backend = loadKernelBackend({
  backend: "native",
  threads: intFlag(values.threads, "threads"),
}) as NativeBackend;
// The addon's own calls (the backend's module, its pool): the bench times the pack into memory it
// chooses, which prepareWeight hides.
const { addon } = loadNativeAddon();

interface Row {
  type: string;
  memory: string;
  packMs: number;
  copyMs: number;
  packGbPerS: number;
  ratio: number;
}
const results: Row[] = [];
for (const type of types) {
  const code = QUANT_CODE[type];
  const bytes = addon.quantPackedBytes(code, rows, cols);
  if (bytes === 0) throw new Error(`--type: ${type} has no packed layout on this CPU's variant`);
  const src = quantizeMatrix(
    type,
    Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.37)),
    cols,
  );
  const w = allocSharedBytes(src.length);
  w.set(src);
  const fresh = (huge: boolean) => {
    const dst = allocSharedBytes(bytes);
    if (huge) addon.adviseHugePages(dst);
    return dst;
  };
  const touched = allocSharedBytes(bytes);
  touched.fill(1);
  const cases: [string, () => Uint8Array][] = [
    ["fresh, 4 KiB pages", () => fresh(false)],
    ["fresh, huge pages advised", () => fresh(true)],
    ["already touched", () => touched],
  ];
  for (const [memory, target] of cases) {
    const [tPack, tCopy] = bestAlternating(
      reps,
      () => addon.quantPack(target(), w, code, rows, cols),
      () => target().set(w.subarray(0, bytes)),
    ) as [number, number];
    const packMs = tPack * 1e3;
    const copyMs = tCopy * 1e3;
    results.push({ type, memory, packMs, copyMs, packGbPerS: bytes / packMs / 1e6, ratio: packMs / copyMs });
  }
}

console.log(`${cpuModel()}; ${backend.describe()}; ${rows}x${cols}`);
console.log("type   | memory                    | pack ms | copy ms | pack GB/s | pack / copy");
for (const r of results)
  console.log(
    `${r.type.padEnd(6)} | ${r.memory.padEnd(25)} | ${r.packMs.toFixed(1).padStart(7)} | ${r.copyMs.toFixed(1).padStart(7)} | ${r.packGbPerS.toFixed(1).padStart(9)} | ${r.ratio.toFixed(2).padStart(11)}`,
  );
writeResults("kernels-quant-pack.json", {
  cpu: cpuModel(),
  backend: backend.describe(),
  rows,
  cols,
  results,
});
