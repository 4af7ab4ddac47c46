// Element-wise activations with a transcendental per element on the native kernels: GELU's tanh
// form times the up projection (Gemma's FFN), soft-capping (Gemma 2's logits), gpt-oss's clamped
// SwiGLU. Each against a plain scaling of the same elements (`scale`: one pass over memory, no
// transcendental) timed alternately in the same repetitions: what a pass over those bytes costs
// by itself. Sizes are a decode step's and a prompt chunk's: Gemma-2-2B's FFN width (9216) for 1
// and 512 tokens, its 256,000-token vocabulary for 1 and 8 rows of logits.
//
//   node dist/bench/kernels/activations.js [--threads 2] [--reps 20] [--variant avx512bf16,avx2]
import { loadKernelBackend } from "../../src/kernels/index.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { SeededRandom } from "../../src/util/seeded-random.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { bestAlternating, writeResults } from "../common/results.js";
import { variantFlag } from "../common/variants.js";

const { values } = benchArgs({
  options: {
    threads: { type: "string", default: "2" },
    reps: { type: "string", default: "20" },
    variant: { type: "string" },
  },
});
const threads = intFlag(values.threads, "threads");
const reps = intFlag(values.reps, "reps");
const backend = loadKernelBackend({ backend: "native", threads }) as NativeBackend;
const variants = variantFlag(backend, values.variant);

interface Case {
  op: "geluMul" | "softcap" | "swigluClamped";
  what: string;
  n: number;
}
const CASES: Case[] = [
  { op: "geluMul", what: "Gemma-2-2B FFN, 1 token", n: 9216 },
  { op: "geluMul", what: "Gemma-2-2B FFN, 512 tokens", n: 9216 * 512 },
  { op: "softcap", what: "Gemma-2 logits, 1 row", n: 256_000 },
  { op: "softcap", what: "Gemma-2 logits, 8 rows", n: 256_000 * 8 },
  { op: "swigluClamped", what: "gpt-oss expert, 4 experts x 1 token", n: 2880 * 4 },
  { op: "swigluClamped", what: "gpt-oss experts, 512 tokens x 4", n: 2880 * 4 * 512 },
];

/** n values uniform in [-scale / 2, scale / 2), the same on every run. */
function random(n: number, scale: number): Float32Array {
  const r = new SeededRandom(99);
  return Float32Array.from({ length: n }, () => (r.next() - 0.5) * scale);
}

interface Row {
  variant: string;
  op: string;
  what: string;
  elements: number;
  nsPerElement: number;
  scaleNsPerElement: number;
  /** the op's time over the plain pass's */
  vsScale: number;
}
const rows: Row[] = [];
try {
  for (const variant of variants) {
    backend.selectVariant(variant);
    for (const c of CASES) {
      const g = random(c.n, 8);
      const u = random(c.n, 2);
      const out = new Float32Array(c.n);
      const run = {
        geluMul: () => backend.geluMul(out, g, u, c.n),
        softcap: () => backend.softcap(out, g, 30, c.n),
        swigluClamped: () => backend.swigluClamped(out, g, u, c.n, 1.702, 7),
      }[c.op];
      const plain = () => backend.scale(out, g, 0.5, c.n);
      const [t, tScale] = bestAlternating(reps, run, plain) as [number, number];
      rows.push({
        variant,
        op: c.op,
        what: c.what,
        elements: c.n,
        nsPerElement: (t / c.n) * 1e9,
        scaleNsPerElement: (tScale / c.n) * 1e9,
        vsScale: t / tScale,
      });
    }
  }
} finally {
  backend.selectVariant(backend.info().supported[0]!);
}

console.log(`${cpuModel()}; ${backend.describe()}; best of ${reps}`);
console.log(
  "variant    | op            | case                                  | elements | ns/element | scale ns/element | op / scale",
);
for (const r of rows)
  console.log(
    [
      r.variant.padEnd(10),
      r.op.padEnd(13),
      r.what.padEnd(37),
      String(r.elements).padStart(8),
      r.nsPerElement.toFixed(3).padStart(10),
      r.scaleNsPerElement.toFixed(3).padStart(16),
      `${r.vsScale.toFixed(2)}×`.padStart(10),
    ].join(" | "),
  );
writeResults("kernels-activations.json", {
  cpu: cpuModel(),
  backend: backend.describe(),
  threads,
  reps,
  rows,
});
