// Where one-sequence decode spends its time: each kernel call of our engine timed and summed per
// step, for a random-weight model of one of the llama.cpp comparison's shapes (the same cached
// model directory), with the weight bytes the matmuls read per step and their rate against a
// streaming read measured in the same run.
//
//   node dist/bench/llamacpp/decode-profile.js [--shape llama3.2-1b|smollm2-135m|qwen3-0.6b|gemma3-1b]
//                                              [--threads 2] [--tokens 24] [--reps 3]
//                                              [--quantize q8_0|q4_0|q4_k_m] [--models DIR]
//
// --models: where the generated model is cached (default .lamina-cache/bench-models, which git
// ignores; the llama.cpp comparison uses the same). Only the model directory is generated unless
// --quantize asks for a GGUF export.
//
// --quantize: the model's GGUF export at that quantization (the file the llama.cpp comparison
// runs) instead of the bf16 directory; the matmuls are then also broken down by weight type and shape.
import path from "node:path";
import { GGUF_QUANTIZE, type GgufQuantize } from "../../src/convert/gguf-format.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import type { KernelBackend, PreparedWeight } from "../../src/kernels/backend.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { weightRowBytes } from "../../src/model/gguf-dequant.js";
import { loadModel } from "../../src/model/load.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { bestTime, REPO_ROOT, writeResults } from "../common/results.js";
import { benchPrompt, benchShape, ensureBenchModel, ensureBenchModelDir } from "./bench-models.js";

const { values } = benchArgs({
  options: {
    shape: { type: "string", default: "llama3.2-1b" },
    threads: { type: "string", default: "2" },
    tokens: { type: "string", default: "24" },
    reps: { type: "string", default: "3" },
    quantize: { type: "string" },
    models: { type: "string", default: path.join(REPO_ROOT, ".lamina-cache", "bench-models") },
  },
});
const shape = benchShape(values.shape, "shape");
const threads = intFlag(values.threads, "threads");
const tokens = intFlag(values.tokens, "tokens", 2);
const reps = intFlag(values.reps, "reps");
const quantize = values.quantize as GgufQuantize | undefined;
if (quantize !== undefined && !(GGUF_QUANTIZE as readonly string[]).includes(quantize))
  throw new Error(`--quantize takes ${GGUF_QUANTIZE.join(", ")}; got "${quantize}"`);

const log = (l: string) => console.log(l);
const model = await loadModel(
  quantize
    ? (await ensureBenchModel(values.models, shape, "bf16", log, quantize)).gguf
    : ensureBenchModelDir(values.models, shape, "bf16", log),
);
const weights = quantize ?? "bf16";
const native = loadKernelBackend({ backend: "native", threads }) as NativeBackend;

// Every backend method timed; matmul also counts the weight bytes it reads.
const millis = new Map<string, number>();
let matmulBytes = 0;
const timed = new Proxy(native, {
  get(target, key, receiver) {
    const v = Reflect.get(target, key, receiver);
    if (typeof v !== "function" || typeof key !== "string") return v;
    return (...args: unknown[]) => {
      const t0 = performance.now();
      const r = v.apply(target, args);
      millis.set(key, (millis.get(key) ?? 0) + performance.now() - t0);
      if (key === "matmul") {
        const w = args[2] as PreparedWeight;
        matmulBytes += w.rows * weightRowBytes(w.dtype, w.cols);
        if (quantize) {
          const each = `  ${w.dtype} ${w.rows}x${w.cols}`;
          millis.set(each, (millis.get(each) ?? 0) + performance.now() - t0);
        }
      }
      return r;
    };
  },
}) as KernelBackend;

/** Decodes `tokens` tokens of one sequence on `backend`; returns the decode steps and their ms each. */
async function decode(backend: KernelBackend): Promise<{ steps: number; stepMs: number }> {
  const core = buildColocatedEngine(model, backend, {
    maxRunning: 1,
    maxTokensPerStep: 512,
    maxModelLen: 64 + tokens,
    speculativeTokens: 0, // one token a step, as llama.cpp decodes
  });
  core.add({
    id: "p",
    promptTokenIds: benchPrompt(16, 0),
    params: resolveSamplingParams({ temperature: 0, maxTokens: tokens, ignoreEos: true }),
  });
  await core.runStep(); // prefill and the first token: not a decode step
  millis.clear();
  matmulBytes = 0;
  let steps = 0;
  const t0 = performance.now();
  while (core.hasWork) {
    await core.runStep();
    steps++;
  }
  return { steps, stepMs: (performance.now() - t0) / steps };
}

// The limit: a streaming read of 1 GiB by the same threads, best of two, measured right after
// each untimed decode pass so that each pass is compared with the memory speed of its moment (on a
// shared host the read alone moves by a fifth from one minute to the next).
const stream = new Float32Array(2 ** 28).fill(1);
function streamGBsNow(): number {
  return stream.byteLength / bestTime(2, () => native.streamRead(stream)) / 1e9;
}

await decode(native); // warm-up: first touches of weights and caches, JIT
const { steps, stepMs: timedStepMs } = await decode(timed); // the per-kernel breakdown
const weightBytesPerStep = matmulBytes / steps;
const timedStream = streamGBsNow();
const matmulGBs = matmulBytes / ((millis.get("matmul") ?? 0) / 1000) / 1e9;
// Taken now: every later pass clears the per-kernel times.
const kernels = [...millis]
  .sort((a, b) => b[1] - a[1])
  .map(([name, ms]) => ({ name, msPerStep: ms / steps }));
// Untimed passes, each against the streaming read beside it; the median pass is reported.
const passes: { stepMs: number; streamGBs: number; pct: number }[] = [];
for (let i = 0; i < reps; i++) {
  const { stepMs } = await decode(native);
  const streamGBs = streamGBsNow();
  passes.push({ stepMs, streamGBs, pct: (100 * weightBytesPerStep) / (stepMs / 1000) / 1e9 / streamGBs });
}
passes.sort((a, b) => a.pct - b.pct);
const { stepMs, streamGBs, pct: stepPct } = passes[(passes.length - 1) >> 1]!;

console.log(
  `${shape} ${weights}, one sequence, ${native.describe()}: ${stepMs.toFixed(1)} ms per decode step ` +
    `(${timedStepMs.toFixed(1)} ms with every kernel call timed)`,
);
console.log("kernel      | ms/step | share of the timed step");
for (const k of kernels)
  console.log(
    `${k.name.padEnd(11)} | ${k.msPerStep.toFixed(2).padStart(7)} | ${((100 * k.msPerStep) / timedStepMs).toFixed(0).padStart(22)}%`,
  );
console.log(
  `matmul reads ${(weightBytesPerStep / 1e9).toFixed(3)} GB of weights per step at ${matmulGBs.toFixed(1)} GB/s: ` +
    `${((100 * matmulGBs) / timedStream).toFixed(0)}% of the streaming read after the timed pass (${timedStream.toFixed(1)} GB/s)`,
);
console.log(
  `whole step, median of ${reps} untimed passes: ${stepMs.toFixed(1)} ms, ` +
    `${(weightBytesPerStep / (stepMs / 1000) / 1e9).toFixed(1)} GB/s of weights, ${stepPct.toFixed(0)}% of the ` +
    `streaming read beside it (${streamGBs.toFixed(1)} GB/s); every pass: ` +
    passes.map((p) => `${p.pct.toFixed(0)}%`).join(", "),
);
// The same figure as tokens per second: one decode step is one token of the sequence, and the
// limit is the streaming read divided by the weight bytes a token reads.
const tokPerS = 1000 / stepMs;
const limitTokPerS = (streamGBs * 1e9) / weightBytesPerStep;
console.log(
  `decode: ${tokPerS.toFixed(1)} tok/s against ${limitTokPerS.toFixed(1)} tok/s (streaming read ÷ ` +
    `${(weightBytesPerStep / 1e9).toFixed(3)} GB per token): ${((100 * tokPerS) / limitTokPerS).toFixed(0)}%`,
);
writeResults(`decode-profile-${shape}${quantize ? `-${quantize}` : ""}.json`, {
  tokPerS,
  limitTokPerS,
  shape,
  weights,
  backend: native.describe(),
  steps,
  stepMs,
  timedStepMs,
  kernels,
  matmulBytesPerStep: weightBytesPerStep,
  matmulGBs,
  streamGBsAfterTimedPass: timedStream,
  streamGBs,
  stepPctOfStream: stepPct,
  passes,
});
