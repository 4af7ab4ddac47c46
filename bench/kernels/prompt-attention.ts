// Prompt attention: a chunk of query tokens of one sequence after a cached context (causal), on the
// native kernels, in tiles of query tokens against the per-token kernel (setPromptTiles), timed
// alternately in the same repetitions with the arithmetic peak of the instruction the tiles
// multiply with as the limit.
//
//   node dist/bench/kernels/prompt-attention.js [--shapes smollm2-135m,llama-3.2-1b,llama-3.1-8b]
//                                               [--ctx 0,2048,8192] [--chunk 512] [--block 64]
//                                               [--dtype bf16,f16,int8] [--threads 2] [--reps 5]
//                                               [--variant avx512bf16,avx2]
//
// The limit is the peak of the instruction the tiles multiply with: AMX's tdpbf16ps for a bf16 cache
// with head_dim a multiple of 32 on a variant with tiles (amxbf16), vdpbf16ps for a bf16 cache with
// grouped queries where the variant takes it for attention (avx512bf16), the byte product for an
// int8 cache (vpdpbusd where the CPU has VNNI at the variant's width, else vpmaddubsw and vpmaddwd,
// counted as one), else fp32 FMA (f16 and f32 caches, int8 on the portable build, bf16 elsewhere).
// An int8 cache's per-token kernel multiplies bytes too.
// Flops are those of the two products over the keys each query reads (4 · head_dim per query head
// and key: the causal part of the chunk counts its own keys once each), so a kernel computing
// masked keys it does not need gets no credit for them. Each figure is the best of --reps.
import type { AttentionArgs, KvDType } from "../../src/kernels/backend.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { allocKvLayer, parseKvDtype } from "../../src/kernels/kv-cache.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { f32ToBf16, f32ToF16 } from "../../src/model/tensor.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag, intListFlag } from "../common/flags.js";
import { bestAlternating, writeResults } from "../common/results.js";
import { variantFlag } from "../common/variants.js";

/** Attention shapes of models people serve: query heads, KV heads, head_dim. */
const SHAPES: Record<string, { nHeads: number; nKvHeads: number; headDim: number }> = {
  "smollm2-135m": { nHeads: 9, nKvHeads: 3, headDim: 64 },
  "llama-3.2-1b": { nHeads: 32, nKvHeads: 8, headDim: 64 },
  "llama-3.1-8b": { nHeads: 32, nKvHeads: 8, headDim: 128 },
};

const { values } = benchArgs({
  options: {
    shapes: { type: "string", default: Object.keys(SHAPES).join(",") },
    ctx: { type: "string", default: "0,2048,8192" },
    chunk: { type: "string", default: "512" },
    block: { type: "string", default: "64" },
    dtype: { type: "string", default: "bf16,f16" },
    threads: { type: "string", default: "2" },
    reps: { type: "string", default: "5" },
    // Compiled kernel variants to run (default: the one this CPU gets), one after another.
    variant: { type: "string" },
  },
});
const shapes = values.shapes.split(",").map((name) => {
  const s = SHAPES[name];
  if (!s) throw new Error(`--shapes: unknown shape "${name}" (known: ${Object.keys(SHAPES).join(", ")})`);
  return { name, ...s };
});
const contexts = intListFlag(values.ctx, "ctx", 0);
const chunk = intFlag(values.chunk, "chunk");
const blockSize = intFlag(values.block, "block");
const threads = intFlag(values.threads, "threads");
const reps = intFlag(values.reps, "reps");
const dtypes = values.dtype.split(",").map((d) => parseKvDtype(d, "--dtype"));

const backend = loadKernelBackend({ backend: "native" }) as NativeBackend;
const variants = variantFlag(backend, values.variant);
const PEAK_ROUNDS = 200_000;

type Instruction = "AMX" | "vdpbf16ps" | "vpdpbusd" | "vpmaddubsw" | "FMA";

/** The instruction the tiles multiply with (native/kernels/src/kernels.cpp, attentionTileWith). */
function tileInstruction(dtype: KvDType, shape: (typeof shapes)[number]): Instruction {
  if (dtype === "int8") {
    const path = backend.info().int8Attention;
    return path === "widen" ? "FMA" : path === "maddubs" ? "vpmaddubsw" : "vpdpbusd";
  }
  if (dtype === "bf16" && backend.info().tiles && shape.headDim % 32 === 0) return "AMX";
  const group = shape.nHeads / shape.nKvHeads;
  return dtype === "bf16" && backend.info().bf16DotAttention && group >= 2 && shape.headDim % 32 === 0
    ? "vdpbf16ps"
    : "FMA";
}

/** Operations (a multiply-add two) of `rounds` rounds of the instruction's loop on every thread. */
function peakOps(instruction: Instruction, rounds: number): number {
  if (instruction === "AMX") return backend.tilePeak(rounds);
  if (instruction === "vdpbf16ps") return backend.bf16DotPeak(rounds);
  if (instruction === "vpdpbusd" || instruction === "vpmaddubsw") return backend.byteDotPeak(rounds);
  return backend.fmaPeak(rounds);
}

/** One sequence's chunk of `chunk` queries at positions [ctx, ctx + chunk) over a cache of random rows. */
function promptCall(
  shape: (typeof shapes)[number],
  ctx: number,
  dtype: KvDType,
): { args: AttentionArgs; flops: number } {
  const { nHeads, nKvHeads, headDim } = shape;
  const blocks = Math.ceil((ctx + chunk) / blockSize);
  const cache = allocKvLayer(
    dtype,
    blocks,
    blockSize,
    nKvHeads,
    headDim,
    (d) => void backend.adviseHugePages(d),
  );
  let seed = 7;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  };
  if (dtype === "int8") {
    // Codes over the whole byte range, each row's scale that of elements within ±0.5.
    for (let i = 0; i < cache.k.length; i++) {
      cache.k[i] = Math.round(254 * next());
      cache.v[i] = Math.round(254 * next());
    }
    cache.kScale!.fill(0.5 / 127);
    cache.vScale!.fill(0.5 / 127);
  } else {
    const stored = dtype === "bf16" ? f32ToBf16 : dtype === "f16" ? f32ToF16 : (x: number) => x;
    for (let i = 0; i < cache.k.length; i++) {
      cache.k[i] = stored(next());
      cache.v[i] = stored(next());
    }
  }
  const q = new Float32Array(chunk * nHeads * headDim);
  for (let i = 0; i < q.length; i++) q[i] = 2 * next();
  const keys = chunk * ctx + (chunk * (chunk + 1)) / 2;
  return {
    args: {
      out: new Float32Array(chunk * nHeads * headDim),
      q,
      cache,
      blockTables: Int32Array.from({ length: blocks }, (_, i) => i),
      maxBlocksPerSeq: blocks,
      qSeq: new Int32Array(chunk),
      ctxStart: new Int32Array(chunk),
      ctxEnd: Int32Array.from({ length: chunk }, (_, i) => ctx + i + 1),
      nTokens: chunk,
      nHeads,
      scale: 1 / Math.sqrt(headDim),
    },
    flops: 4 * keys * nHeads * headDim,
  };
}

interface Row {
  variant: string;
  shape: string;
  kvDtype: KvDType;
  instruction: Instruction;
  ctx: number;
  chunk: number;
  peakGflops: number;
  tiledMs: number;
  tiledGflops: number;
  tiledPctOfPeak: number;
  perTokenMs: number;
  perTokenGflops: number;
  perTokenPctOfPeak: number;
  /** perTokenMs / tiledMs */
  speedup: number;
}
const results: Row[] = [];
backend.setThreads(threads);
try {
  for (const variant of variants)
    for (const shape of shapes)
      for (const dtype of dtypes)
        for (const ctx of contexts) {
          backend.selectVariant(variant);
          const { args, flops } = promptCall(shape, ctx, dtype);
          const instruction = tileInstruction(dtype, shape);
          const call = (tiles: boolean) => () => {
            backend.setPromptTiles(tiles);
            backend.attention(args);
          };
          let peakFlops = 0;
          const peak = () => {
            peakFlops = peakOps(instruction, PEAK_ROUNDS);
          };
          call(true)();
          call(false)();
          const [tPeak, tTiled, tPerToken] = bestAlternating(reps, peak, call(true), call(false)) as [
            number,
            number,
            number,
          ];
          const peakGflops = peakFlops / tPeak / 1e9;
          const g = (t: number) => flops / t / 1e9;
          results.push({
            variant,
            shape: shape.name,
            kvDtype: dtype,
            instruction,
            ctx,
            chunk,
            peakGflops,
            tiledMs: tTiled * 1e3,
            tiledGflops: g(tTiled),
            tiledPctOfPeak: (100 * g(tTiled)) / peakGflops,
            perTokenMs: tPerToken * 1e3,
            perTokenGflops: g(tPerToken),
            perTokenPctOfPeak: (100 * g(tPerToken)) / peakGflops,
            speedup: tPerToken / tTiled,
          });
        }
} finally {
  backend.setPromptTiles(true);
  backend.selectVariant(backend.info().supported[0]!);
}

console.log(`${cpuModel()}; ${backend.describe()}; chunk ${chunk}, block ${blockSize}, ${threads} thread(s)`);
console.log(
  "variant    | shape        | KV   | context | instruction | peak GFLOP/s | tiled ms | tiled GFLOP/s | % of peak | per-token ms | per-token GFLOP/s | % of peak | tiled speedup",
);
for (const r of results)
  console.log(
    [
      r.variant.padEnd(10),
      r.shape.padEnd(12),
      r.kvDtype.padEnd(4),
      String(r.ctx).padStart(7),
      r.instruction.padStart(11),
      r.peakGflops.toFixed(0).padStart(12),
      r.tiledMs.toFixed(2).padStart(8),
      r.tiledGflops.toFixed(0).padStart(13),
      r.tiledPctOfPeak.toFixed(0).padStart(9),
      r.perTokenMs.toFixed(2).padStart(12),
      r.perTokenGflops.toFixed(0).padStart(17),
      r.perTokenPctOfPeak.toFixed(0).padStart(9),
      `${r.speedup.toFixed(2)}×`.padStart(13),
    ].join(" | "),
  );

writeResults("kernels-prompt-attention.json", {
  cpu: cpuModel(),
  backend: backend.describe(),
  chunk,
  blockSize,
  threads,
  results,
});
