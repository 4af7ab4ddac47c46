/**
 * Lamina vs llama.cpp on the same weights, precision and thread count, in one run.
 *
 *   node dist/bench/llamacpp/compare.js [--shapes smollm2-135m,llama3.2-1b,qwen3-0.6b,gemma3-1b,gpt-oss-20b-4l]
 *        [--reps 3] [--tokens 32] [--threads 2] [--dtype bf16] [--quantize q8_0|q4_0|q4_k_m]
 *        [--seqs 1,8,32] [--no-prefill] [--prefill-len 512,4096]
 *
 * --seqs: the decode scenarios' sequence counts (small batches such as 2,4 show the products that
 * read the weights once for a few tokens); --no-prefill leaves the prefill out; --prefill-len: its
 * prompt lengths (default 512, the issues' target; longer prompts show the attention over them).
 * --quantize: both engines run the same quantized GGUF file (our export at that quantization);
 * without it ours runs the Hugging Face directory and llama.cpp its GGUF export at --dtype. The
 * gpt-oss shape runs from GGUF only (--quantize mxfp4_moe, as its releases ship).
 *
 * Random-weight models of these shapes (default: the first two) are generated as Hugging Face
 * directories (cached under .lamina-cache/bench-models) and exported to GGUF with our converter;
 * our engine runs in-process on the native backend, llama.cpp through node-llama-cpp's prebuilt
 * CPU binary. Scenarios
 * alternate between the engines, each repeated; figures are medians. Every figure is reported as
 * a ratio to llama.cpp measured in the same run. Writes bench/results/llamacpp-<shapes>.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { median } from "../../src/bench/stats.js";
import { GGUF_QUANTIZE, type GgufQuantize } from "../../src/convert/gguf-format.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import type { DType } from "../../src/model/tensor.js";
import { intFlag, intListFlag } from "../common/flags.js";
import { benchPrompt, benchShape, DEFAULT_SHAPES, ensureBenchModel } from "./bench-models.js";
import { LlamaCppRunner } from "./llamacpp.js";
import type { EngineRunner } from "./measure.js";
import { OursRunner } from "./ours.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const shapes = flag("shapes", DEFAULT_SHAPES.join(","))
  .split(",")
  .map((s) => benchShape(s, "shapes"));
const reps = intFlag(flag("reps", "3"), "reps");
const tokens = intFlag(flag("tokens", "32"), "tokens");
const threads = intFlag(flag("threads", "2"), "threads");
const seqCounts = intListFlag(flag("seqs", "1,8,32"), "seqs");
const withPrefill = !process.argv.includes("--no-prefill");
const dtype = flag("dtype", "bf16") as DType;
if (!["bf16", "f16"].includes(dtype)) throw new Error(`--dtype ${dtype}: use bf16 or f16`);
const quantizeFlag = flag("quantize", "");
if (quantizeFlag && !(GGUF_QUANTIZE as readonly string[]).includes(quantizeFlag))
  throw new Error(`--quantize ${quantizeFlag}: use ${GGUF_QUANTIZE.join(", ")}`);
const quantize = quantizeFlag ? (quantizeFlag as GgufQuantize) : undefined;
const cacheRoot = path.join(root, ".lamina-cache", "bench-models");
const PROMPT_LEN = 16;
const PREFILL_LEN = 512;
const prefillLens = intListFlag(flag("prefill-len", String(PREFILL_LEN)), "prefill-len");

interface Scenario {
  readonly metric: string;
  readonly target: number;
  run(engine: EngineRunner): Promise<number>;
}

const decodeScenario = (seqs: number, target: number): Scenario => ({
  metric: seqs === 1 ? "decode tok/s, 1 sequence" : `decode tok/s, ${seqs} sequences (aggregate)`,
  target,
  run: (e) =>
    e.decode(
      Array.from({ length: seqs }, (_, i) => benchPrompt(PROMPT_LEN, i + 1)),
      tokens,
    ),
});
// Targets (issues 4 and 17): quantized files have their own, higher ones.
const decodeTarget = (seqs: number) =>
  seqs === 1 ? (quantize ? 1.2 : 1.0) : seqs === 32 ? (quantize ? 2.0 : 1.5) : 0;
const scenarios: Scenario[] = [
  ...seqCounts.map((seqs) => decodeScenario(seqs, decodeTarget(seqs))),
  ...(withPrefill
    ? prefillLens.map((len) => ({
        metric: `prefill tok/s, ${len}-token prompt`,
        target: len === PREFILL_LEN ? (quantize ? 1.0 : 0.8) : 0,
        run: (e: EngineRunner) => e.prefill(benchPrompt(len, 99)),
      }))
    : []),
];

function cpuModel(): string {
  const line = readFileSync("/proc/cpuinfo", "utf8")
    .split("\n")
    .find((l) => l.startsWith("model name"));
  return line ? line.split(":")[1]!.trim() : (os.cpus()[0]?.model ?? "unknown");
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const rows: Record<string, unknown>[] = [];
const loadBefore = os.loadavg()[0]!;
let binary = "";
let flashAttention: string | undefined;

for (const shape of shapes) {
  const files = await ensureBenchModel(cacheRoot, shape, dtype, log, quantize);
  log(`${shape}: loading both engines ...`);
  const model = await loadModel(quantize ? files.gguf : files.dir);
  // The KV cache in f16 on both sides, llama.cpp's default, so each engine does the same work (ours
  // would keep a bf16 model's cache in bf16).
  const ours = new OursRunner(model, loadKernelBackend({ backend: "native", threads }), { kvDtype: "f16" });
  const theirs = await LlamaCppRunner.open(files.gguf, threads);
  binary = theirs.binary;
  // One untimed pass of each engine first: page in the weights, warm caches and thread pools.
  await ours.decode([benchPrompt(PROMPT_LEN, 0)], 4);
  await theirs.decode([benchPrompt(PROMPT_LEN, 0)], 4);
  for (const sc of scenarios) {
    const samples: Record<string, number[]> = { lamina: [], "llama.cpp": [] };
    for (let r = 0; r < reps; r++) {
      const order = r % 2 === 0 ? [ours, theirs] : [theirs, ours];
      for (const engine of order) samples[engine.name]!.push(await sc.run(engine));
    }
    const a = median(samples.lamina!);
    const b = median(samples["llama.cpp"]!);
    const row = {
      shape,
      metric: sc.metric,
      lamina: a,
      llamaCpp: b,
      ratio: a / b,
      target: sc.target,
      samples,
    };
    rows.push(row);
    log(
      `${shape} | ${sc.metric}: lamina ${a.toFixed(1)}, llama.cpp ${b.toFixed(1)}, ratio ${(a / b).toFixed(2)}`,
    );
  }
  flashAttention = theirs.flashAttention;
  await theirs.close();
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const lines = [
  `| model (${quantize ?? dtype}, random weights) | metric | lamina | llama.cpp | lamina / llama.cpp | target |`,
  "| --- | --- | ---: | ---: | ---: | ---: |",
  ...rows.map((r) => {
    const t = r.target as number;
    return `| ${r.shape} | ${r.metric} | ${fmt(r.lamina as number)} | ${fmt(r.llamaCpp as number)} | ${(r.ratio as number).toFixed(2)}× | ${t > 0 ? `≥ ${t.toFixed(1)}×` : "–"} |`;
  }),
];
const cpu = cpuModel();
const loadAfter = os.loadavg()[0]!;
process.stdout.write(
  `${lines.join("\n")}\n\n${cpu}, ${os.cpus().length} CPUs, ${threads} threads each, ` +
    `${tokens} decode tokens per sequence after a ${PROMPT_LEN}-token prompt, medians of ${reps}; ` +
    `llama.cpp: ${binary}, flash attention ${flashAttention}; load average ${loadBefore.toFixed(1)} → ${loadAfter.toFixed(1)}\n`,
);
const outDir = path.join(root, "bench/results");
mkdirSync(outDir, { recursive: true });
writeFileSync(
  path.join(outDir, `llamacpp-${shapes.join("+")}${quantize ? `-${quantize}` : ""}.json`),
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      cpu,
      cpus: os.cpus().length,
      threads,
      dtype,
      quantize: quantize ?? null,
      reps,
      decodeTokens: tokens,
      promptTokens: PROMPT_LEN,
      prefillTokens: prefillLens,
      llamaCpp: { binary, flashAttention },
      loadAverage: { before: loadBefore, after: loadAfter },
      rows,
    },
    null,
    2,
  )}\n`,
);
