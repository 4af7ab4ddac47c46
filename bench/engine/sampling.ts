// The sampler over real vocabularies: µs a row for greedy and sampled draws (with the generation
// defaults models ship: Llama 3's temperature 0.6 / top-p 0.9, Qwen's 0.7 / top-k 20 / top-p 0.8),
// its own loop against the native row softmax, each against the least a sampled draw does measured
// in the same run (the row's native softmax alone). Two kinds of rows: a peaked head over a broad
// tail, as a trained model's usually are, and a broad one (a random-weight model's, or a creative
// one's), whose top-p nucleus holds most of the vocabulary. Then an engine's decode of a
// random-weight Llama-3.2-1B shape (128,256 tokens) at greedy and at Llama 3's defaults, same run.
//
//   node dist/bench/engine/sampling.js [--vocab 32000,128256,151936] [--rows 200] [--seqs 8]
//                                      [--tokens 16] [--no-engine]
import path from "node:path";
import { Rng } from "../../src/engine/rng.js";
import { Sampler, type SamplingState } from "../../src/engine/sampler.js";
import { resolveSamplingParams, type SamplingInput } from "../../src/engine/sampling-params.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag, intListFlag } from "../common/flags.js";
import { REPO_ROOT, writeResults } from "../common/results.js";
import { benchPrompt, benchShape, ensureBenchModelDir } from "../llamacpp/bench-models.js";

const { values } = benchArgs({
  options: {
    vocab: { type: "string", default: "32000,128256,151936" },
    rows: { type: "string", default: "200" },
    shape: { type: "string", default: "smollm2-135m" },
    seqs: { type: "string", default: "64" },
    tokens: { type: "string", default: "32" },
    "no-engine": { type: "boolean", default: false },
  },
});
const vocabs = intListFlag(values.vocab, "vocab", 2);
const rows = intFlag(values.rows, "rows");
const native = loadKernelBackend({ backend: "native", threads: 2 });

const SETTINGS: [string, SamplingInput][] = [
  ["greedy", { temperature: 0 }],
  ["T 0.8", { temperature: 0.8 }],
  ["Llama 3: T 0.6, top-p 0.9", { temperature: 0.6, topP: 0.9 }],
  ["Qwen: T 0.7, top-k 20, top-p 0.8", { temperature: 0.7, topK: 20, topP: 0.8 }],
];

/** A row of logits: "peaked" (40 tokens well above a tail) or "broad" (spread over ±4). */
function rowOf(V: number, kind: "peaked" | "broad", seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(V);
  if (kind === "broad") for (let i = 0; i < V; i++) x[i] = 8 * rng.next() - 4;
  else {
    for (let i = 0; i < V; i++) x[i] = 6 * rng.next();
    for (let i = 0; i < 40; i++) x[Math.floor(rng.next() * V)] = 14 + 4 * rng.next();
  }
  return x;
}

/** Mean µs a row of `draw` over `rows` rows (each a fresh copy: a draw may change its row). */
function perRow(V: number, kind: "peaked" | "broad", draw: (row: Float32Array, i: number) => void): number {
  const source = rowOf(V, kind, 7);
  const row = new Float32Array(V);
  for (let i = 0; i < 5; i++) {
    row.set(source);
    draw(row, i);
  }
  let t = 0;
  for (let i = 0; i < rows; i++) {
    row.set(source);
    const t0 = performance.now();
    draw(row, i);
    t += performance.now() - t0;
  }
  return (1000 * t) / rows;
}

const state = (input: SamplingInput, seed: number): SamplingState => ({
  params: resolveSamplingParams(input),
  rng: new Rng(seed),
  promptTokens: [],
  outputCounts: new Map(),
});

console.log(`${cpuModel()}; ${native.describe()}`);
console.log("vocab | row | setting | own loop µs | native softmax µs | limit µs | native / limit");
const table: Record<string, unknown>[] = [];
for (const V of vocabs) {
  const own = new Sampler(V);
  const withKernels = new Sampler(V, native);
  for (const kind of ["peaked", "broad"] as const) {
    // The limit: what every sampled draw does at least, the row's softmax (native, in place).
    const limit = perRow(V, kind, (row) => native.softmax(row, 1, V));
    for (const [name, input] of SETTINGS) {
      const a = perRow(V, kind, (row, i) => own.sample(row, 0, state(input, i)));
      const b = perRow(V, kind, (row, i) => withKernels.sample(row, 0, state(input, i)));
      console.log(
        `${V} | ${kind} | ${name} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${limit.toFixed(1)} | ${(b / limit).toFixed(2)}`,
      );
      table.push({ vocab: V, row: kind, setting: name, ownUs: a, nativeUs: b, limitUs: limit });
    }
  }
}

const engine: Record<string, unknown>[] = [];
if (!values["no-engine"]) {
  const seqs = intFlag(values.seqs, "seqs");
  const tokens = intFlag(values.tokens, "tokens", 2);
  const shape = benchShape(values.shape, "shape");
  const dir = ensureBenchModelDir(
    path.join(REPO_ROOT, ".lamina-cache", "bench-models"),
    shape,
    "bf16",
    console.log,
  );
  const model = await loadModel(dir);
  /** Decode tok/s of `seqs` sequences drawing with `input`, after their prefill. */
  const decode = async (input: SamplingInput): Promise<number> => {
    const core = buildColocatedEngine(model, native, {
      maxRunning: seqs,
      maxTokensPerStep: Math.max(512, 16 * seqs),
      maxModelLen: 64 + tokens,
      speculativeTokens: 0,
    });
    const params = resolveSamplingParams({ ...input, maxTokens: tokens, ignoreEos: true, seed: 1 });
    for (let i = 0; i < seqs; i++) core.add({ id: String(i), promptTokenIds: benchPrompt(16, i), params });
    await core.runStep(); // the prompts
    let decoded = 0;
    const t0 = performance.now();
    while (core.hasWork) for (const ev of await core.runStep()) decoded += ev.tokenIds.length;
    return decoded / ((performance.now() - t0) / 1000);
  };
  console.log(`\nengine: random-weight ${shape} shape (vocab ${model.config.vocabSize}), ${seqs} sequences`);
  console.log("round | setting | decode tok/s | / greedy (same round)");
  const engineSettings = SETTINGS.slice(0, 3);
  for (let round = 0; round < 2; round++) {
    const rates: number[] = [];
    for (const [, input] of engineSettings) rates.push(await decode(input));
    engineSettings.forEach(([name], i) => {
      console.log(`${round} | ${name} | ${rates[i]!.toFixed(1)} | ${(rates[i]! / rates[0]!).toFixed(2)}`);
      engine.push({ round, shape, seqs, setting: name, tokS: rates[i] });
    });
  }
}
writeResults("engine-sampling.json", { cpu: cpuModel(), backend: native.describe(), rows, table, engine });
