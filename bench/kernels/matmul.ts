// Batched matrix products (decode batches and prefill chunks) on the native kernels, as a share of
// the arithmetic peak this same run measures on the same threads with a pure loop of the best
// instruction the product uses: AMX tiles for batches on bf16 weights on a variant with them
// (amxbf16), vdpbf16ps for bf16 weights on a variant with bf16 dot products (avx512bf16), the FMA
// otherwise. Weights
// rotate through enough matrices (--gib, default 0.75 GiB, past the last-level cache) to come from
// DRAM, as they do in a decode step.
//
//   node dist/bench/kernels/matmul.js [--rows 4096] [--cols 4096] [--batch 8,32,128] [--dtype f32,bf16]
//                                     [--threads 1,2] [--gib 0.75] [--variant avx512bf16,avx512] [--reps 4]
//                                     [--read-ahead default,on,off]
//
// --variant: the compiled kernel variants to compare (default: the one this CPU gets); --reps:
// repetitions of each product and its limit, alternating (each figure is the best); --read-ahead:
// whether products of up to 8 tokens ask for their weight rows ahead in software
// (read_ahead_policy.h): "default" (on for Intel CPUs), "on", "off", or a list to compare in the
// same repetitions ("reads" column: "ahead" or "hw"); --gib 0.0625 keeps two 4096 x 4096 bf16
// matrices, which a large last-level cache holds from call to call (the kernels' own rate).
import { loadKernelBackend } from "../../src/kernels/index.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import type { DType } from "../../src/model/tensor.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag, intListFlag, readAheadFlag } from "../common/flags.js";
import { bestAlternating, writeResults } from "../common/results.js";
import { variantFlag } from "../common/variants.js";
import { rotatingWeights } from "./weights.js";

const { values } = benchArgs({
  options: {
    rows: { type: "string", default: "4096" },
    cols: { type: "string", default: "4096" },
    batch: { type: "string", default: "8,32,128" },
    dtype: { type: "string", default: "f32,bf16" },
    threads: { type: "string", default: "1,2" },
    gib: { type: "string", default: "0.75" },
    variant: { type: "string" },
    reps: { type: "string", default: "4" },
    "read-ahead": { type: "string", default: "default" },
  },
});
const rows = intFlag(values.rows, "rows");
const cols = intFlag(values.cols, "cols");
const batches = intListFlag(values.batch, "batch");
const threadCounts = intListFlag(values.threads, "threads");
const dtypes = values.dtype.split(",").map((d) => {
  if (d !== "f32" && d !== "bf16" && d !== "f16") throw new Error(`--dtype takes f32, bf16, f16; got "${d}"`);
  return d as DType;
});
const workingSet = Number(values.gib) * 2 ** 30;
const reps = intFlag(values.reps, "reps");

const backend = loadKernelBackend({ backend: "native" }) as NativeBackend;
const variants = variantFlag(backend, values.variant);
const readAheadModes = readAheadFlag(values["read-ahead"]);

interface Row {
  variant: string;
  /** The instruction whose peak the product is measured against. */
  limit: Instruction;
  threads: number;
  dtype: DType;
  batch: number;
  /** Whether the weight rows were asked for ahead in software (products of up to 8 tokens). */
  readAhead: boolean;
  gflops: number;
  peakGflops: number;
  pctOfPeak: number;
  msPerCall: number;
}
const results: Row[] = [];

// FMA rounds per task of the peak loop: about 50 ms of work on this class of machine.
const PEAK_ROUNDS = 2_000_000;
for (const dtype of dtypes) {
  const prepared = rotatingWeights(backend, dtype, rows, cols, workingSet, 0.01);
  for (const batch of batches) results.push(...measure(prepared, dtype, batch));
}

type Instruction = "AMX" | "vdpbf16ps" | "FMA";

/** The instruction `variant` multiplies weights of `dtype` with at this batch (amx_bf16.h, bf16_dot.h). */
function instructionOf(variant: string, dtype: DType, batch: number): Instruction {
  backend.selectVariant(variant);
  const { bf16Dot, tiles } = backend.info();
  if (dtype !== "bf16") return "FMA";
  if (tiles && batch > 8 && cols % 32 === 0) return "AMX";
  return bf16Dot ? "vdpbf16ps" : "FMA";
}

/**
 * Every variant's product and the limits they are measured against (each variant's FMA loop, and
 * the vdpbf16ps and AMX tile loops when a variant uses them), alternating within each repetition so
 * load on the host falls on all of them alike.
 */
function measure(prepared: ReturnType<typeof rotatingWeights>, dtype: DType, batch: number): Row[] {
  const out: Row[] = [];
  const x = new Float32Array(batch * cols).fill(1);
  const y = new Float32Array(batch * rows);
  const instructions = variants.map((v) => instructionOf(v, dtype, batch));
  // Each variant with each --read-ahead mode; vi: its variant's index (for its limit).
  const arms = variants.flatMap((variant, vi) =>
    readAheadModes.map((readAhead) => ({ variant, vi, readAhead })),
  );
  const aheads = arms.map((arm) => {
    backend.setReadAhead(arm.readAhead);
    return backend.info().readAhead;
  });
  const passes = arms.map((arm) => () => {
    backend.selectVariant(arm.variant);
    backend.setReadAhead(arm.readAhead);
    for (const w of prepared) backend.matmul(y, x, w, batch);
  });
  // Flops of each limit's last run (the same count every round), keyed by the limit's index.
  const flops: number[] = [];
  const limit = (variant: string, loop: () => number) => {
    const i = flops.push(0) - 1;
    return () => {
      backend.selectVariant(variant);
      flops[i] = loop();
    };
  };
  const limits = variants.map((v) => limit(v, () => backend.fmaPeak(PEAK_ROUNDS)));
  const special: Partial<Record<Instruction, number>> = {};
  for (const [ins, loop] of [
    ["vdpbf16ps", () => backend.bf16DotPeak(PEAK_ROUNDS)],
    ["AMX", () => backend.tilePeak(PEAK_ROUNDS / 16)],
  ] as const) {
    const v = variants[instructions.indexOf(ins)];
    if (v === undefined) continue;
    special[ins] = limits.length;
    limits.push(limit(v, loop));
  }
  for (const threads of threadCounts) {
    backend.setThreads(threads);
    for (const pass of passes) pass();
    const times = bestAlternating(reps, ...limits, ...passes);
    const gflopsOf = (i: number) => flops[i]! / times[i]! / 1e9;
    arms.forEach(({ variant, vi }, i) => {
      const t = times[limits.length + i]! / prepared.length;
      const gflops = (2 * rows * cols * batch) / t / 1e9;
      const ins = instructions[vi]!;
      const peak = gflopsOf(ins === "FMA" ? vi : special[ins]!);
      out.push({
        variant,
        limit: ins,
        threads,
        dtype,
        batch,
        readAhead: aheads[i]!,
        gflops,
        peakGflops: peak,
        pctOfPeak: (100 * gflops) / peak,
        msPerCall: t * 1e3,
      });
    });
  }
  backend.setReadAhead(null);
  return out;
}
results.sort((a, b) => a.threads - b.threads || a.batch - b.batch);
backend.selectVariant(variants[0]!);

console.log(
  `${cpuModel()}; ${rows}x${cols} weights spanning ${(workingSet / 2 ** 20).toFixed(0)} MiB per dtype`,
);
console.log(
  "variant    | threads | dtype | batch | reads | GFLOP/s | limit     | peak GFLOP/s | % of peak | ms/call",
);
for (const r of results)
  console.log(
    `${r.variant.padEnd(10)} | ${String(r.threads).padStart(7)} | ${r.dtype.padEnd(5)} | ${String(r.batch).padStart(5)} | ${(r.readAhead ? "ahead" : "hw").padStart(5)} | ${r.gflops
      .toFixed(1)
      .padStart(
        7,
      )} | ${r.limit.padEnd(9)} | ${r.peakGflops.toFixed(1).padStart(12)} | ${r.pctOfPeak.toFixed(0).padStart(9)} | ${r.msPerCall
      .toFixed(2)
      .padStart(7)}`,
  );

writeResults("kernels-matmul.json", {
  cpu: cpuModel(),
  backend: backend.describe(),
  info: backend.info(),
  rows,
  cols,
  workingSetBytes: workingSet,
  results,
});
