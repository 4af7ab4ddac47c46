/**
 * PD vs Adrenaline on this machine: one decode instance (this process) and one prefill instance
 * (a child process), a random-weight model whose KV, not compute, limits the decode batch, and a
 * slice of the Azure conversation trace replayed at its arrival times (× --rate-scale), lengths
 * clamped to the served context. Prints a table and writes JSON.
 *
 *   node dist/bench/pd/pd-vs-adrenaline.js [--requests 24] [--rate-scale 4] [--out FILE]
 *
 * Figures are stated against limits measured in the same run: output throughput against the decode
 * instance's ceiling (a full batch of B_max short requests decoding with ample KV), TPOT against
 * that ceiling's step time, KV use against the prefill executor's capacity. The simulator's
 * prediction for the same shapes, budgets and trace slice is printed beside.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { GenerateRequest } from "../../src/engine/api.js";
import type { EngineCore } from "../../src/engine/engine-core.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import type { HybridAttentionService } from "../../src/pd/hybrid-attention.js";
import { buildColocatedEngine, buildPdEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { benchPrompt, ensureBenchModel } from "../disagg/bench-model.js";

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number`);
  return v;
};
const outIdx = process.argv.indexOf("--out");
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const OUT = outIdx >= 0 ? process.argv[outIdx + 1]! : path.join(REPO, "bench/results/pd-adrenaline.json");
const REQUESTS = arg("requests", 24);
const RATE_SCALE = arg("rate-scale", 4);

// Model and budgets: 16 KiB of KV per token; the decode instance's 32 MiB hold 3 requests at the
// served context (640), while it may batch 16; the prefill executor holds 96 MiB.
const SHAPE = {
  hidden: 512,
  layers: 8,
  heads: 8,
  kvHeads: 8,
  intermediate: 1376,
  maxPositions: 1024,
  dtype: "bf16",
} as const;
const CONTEXT = 640;
const MAX_OUTPUT = 128;
const MB = 1 << 20;
const SIZES: EngineOptions = {
  maxModelLen: CONTEXT,
  maxRunning: 16,
  maxTokensPerStep: 512,
  kvMemory: 32 * MB,
  prefillKvMemory: 96 * MB,
  threads: 1,
  prefillThreads: 1,
};

interface TraceRequest {
  readonly at: number;
  readonly prompt: number;
  readonly output: number;
}

/** The first requests of the Azure conversation trace, lengths clamped to the context. */
function traceSlice(n: number): TraceRequest[] {
  const csv = readFileSync(sharedDataPath("traces", "azure-2023", "AzureLLMInferenceTrace_conv.csv"), "utf8");
  const rows = csv
    .trim()
    .split("\n")
    .slice(1, n + 1);
  const t0 = Date.parse(`${rows[0]!.split(",")[0]!.slice(0, 23)}Z`);
  return rows.map((r) => {
    const [ts, ctx, gen] = r.split(",");
    const output = Math.max(1, Math.min(Number(gen), MAX_OUTPUT));
    return {
      at: (Date.parse(`${ts!.slice(0, 23)}Z`) - t0) / 1000 / RATE_SCALE,
      prompt: Math.max(2, Math.min(Number(ctx), CONTEXT - output)),
      output,
    };
  });
}

interface RunResult {
  mode: string;
  outputTokens: number;
  seconds: number;
  throughput: number;
  ttftMean: number;
  ttftP99: number;
  tpotMean: number;
  tpotP99: number;
  preemptions: number;
  prefillKvPeak: number;
  prefillKvMean: number;
  decodeKvMean: number;
  offloadRatioMean: number;
  offloadRatioPeak: number;
  /** Highest N/M right after an offloading decision (what the bound constrains). */
  offloadRatioAtDecisions: number;
  offloadBound: number;
  runningMean: number;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** Replays the trace slice against an engine core; per-step samples of KV and offloading. */
async function replay(
  mode: string,
  core: EngineCore,
  attention: HybridAttentionService,
  trace: TraceRequest[],
): Promise<RunResult> {
  const first = new Map<string, number>();
  const last = new Map<string, number>();
  const count = new Map<string, number>();
  const reqs: (GenerateRequest & { at: number })[] = trace.map((t, i) => ({
    at: t.at,
    id: `r${i}`,
    promptTokenIds: benchPrompt(t.prompt, i),
    params: resolveSamplingParams({ temperature: 0, maxTokens: t.output, ignoreEos: true }),
  }));
  const prefillKv: number[] = [];
  const decodeKv: number[] = [];
  const ratio: number[] = [];
  const running: number[] = [];
  let bound = 0;
  let next = 0;
  const start = performance.now();
  const now = () => (performance.now() - start) / 1000;
  const added = new Map<string, number>();
  while (next < reqs.length || core.hasWork) {
    while (next < reqs.length && reqs[next]!.at <= now()) {
      const r = reqs[next++]!;
      core.add(r);
      added.set(r.id, r.at);
    }
    if (!core.hasWork) {
      await new Promise((res) => setTimeout(res, Math.max(0, (reqs[next]!.at - now()) * 1000)));
      continue;
    }
    const events = await core.runStep();
    const t = now();
    for (const ev of events) {
      if (ev.tokenIds.length === 0) continue;
      if (!first.has(ev.requestId)) first.set(ev.requestId, t);
      last.set(ev.requestId, t);
      count.set(ev.requestId, (count.get(ev.requestId) ?? 0) + ev.tokenIds.length);
    }
    const s = core.stats();
    const dec = s.kv.find((k) => k.worker === "decode");
    const pre = s.kv.filter((k) => k.worker !== "decode");
    if (dec) decodeKv.push(dec.usedBlocks / dec.totalBlocks);
    if (pre.length) prefillKv.push(mean(pre.map((k) => k.usedBlocks / Math.max(1, k.totalBlocks))));
    if (s.offload) {
      ratio.push(s.offload.ratio);
      bound = s.offload.bound;
    }
    running.push(s.running);
  }
  const seconds = now();
  const ttft = reqs.map((r) => first.get(r.id)! - added.get(r.id)!);
  const tpot = reqs
    .filter((r) => (count.get(r.id) ?? 0) > 1)
    .map((r) => (last.get(r.id)! - first.get(r.id)!) / (count.get(r.id)! - 1));
  const outputTokens = [...count.values()].reduce((a, b) => a + b, 0);
  return {
    mode,
    outputTokens,
    seconds,
    throughput: outputTokens / seconds,
    ttftMean: mean(ttft),
    ttftP99: pct(ttft, 0.99),
    tpotMean: mean(tpot),
    tpotP99: pct(tpot, 0.99),
    preemptions: core.stats().preemptions,
    prefillKvPeak: Math.max(0, ...prefillKv),
    prefillKvMean: mean(prefillKv),
    decodeKvMean: mean(decodeKv),
    offloadRatioMean: mean(ratio),
    offloadRatioPeak: Math.max(0, ...ratio),
    offloadRatioAtDecisions: attention.maxRatioSeen,
    offloadBound: bound,
    runningMean: mean(running),
  };
}

/** The limit: B_max short requests decoding together with ample KV (no memory limit). */
async function decodeCeiling(model: LoadedModel): Promise<{ throughput: number; stepSeconds: number }> {
  const backend = loadKernelBackend({ threads: 1 });
  const B = SIZES.maxRunning!;
  const core = buildColocatedEngine(model, backend, { ...SIZES, kvMemory: 256 * MB });
  for (let i = 0; i < B; i++)
    core.add({
      id: `c${i}`,
      promptTokenIds: benchPrompt(16, i),
      params: resolveSamplingParams({ temperature: 0, maxTokens: 48, ignoreEos: true }),
    });
  await core.runStep(); // prefill all
  let tokens = 0;
  let steps = 0;
  const t0 = performance.now();
  while (core.hasWork) {
    for (const ev of await core.runStep()) tokens += ev.tokenIds.length;
    steps++;
  }
  const s = (performance.now() - t0) / 1000;
  return { throughput: tokens / s, stepSeconds: s / steps };
}

/** The simulator on the same shapes, budgets and trace slice (devices from this machine's profile). */
function simulate(
  modelDir: string,
  trace: TraceRequest[],
  placement: "pd" | "adrenaline",
  offload: number | "auto" = "auto",
) {
  const profile = JSON.parse(readFileSync(path.join(REPO, "bench/results/calibration-profile.json"), "utf8"));
  const d = SHAPE.hidden;
  const weightBytes = 2 * (SHAPE.layers * (4 * d * d + 3 * d * SHAPE.intermediate) + 2 * 258 * d);
  // The simulator keeps 90% of a device's memory and 2 GB for activations: add them back so its KV
  // budget is the benchmark's.
  const device = (name: string, kvBytes: number) => ({
    name,
    bf16Tflops: profile.split.gemm.peakFlops / 1e12,
    memoryGB: (weightBytes + kvBytes + 2e9) / 0.9 / 1e9,
    memoryBandwidthTBs: profile.split.weightBandwidth / 1e12,
    interChipGBs: 0,
    networkGbps: profile.transport.bandwidth * 8e-9,
    powerW: 100,
    pricePerHour: 1,
    source: `this machine's calibration profile, memory = weights + the benchmark's KV budget`,
  });
  const dir = path.join(tmpdir(), "lamina-bench-pd");
  execFileSync("mkdir", ["-p", dir]);
  const catalog = path.join(dir, "catalog.json");
  writeFileSync(
    catalog,
    JSON.stringify({
      accelerators: [
        device("bench-decode", SIZES.kvMemory!),
        device("bench-prefill", SIZES.prefillKvMemory!),
      ],
    }),
  );
  const csv = path.join(dir, "trace.csv");
  const base = Date.parse("2023-11-16T18:15:46.000Z");
  writeFileSync(
    csv,
    `TIMESTAMP,ContextTokens,GeneratedTokens\n${trace
      .map(
        (t) =>
          `${new Date(base + t.at * 1000).toISOString().replace("T", " ").replace("Z", "")},${t.prompt},${t.output}`,
      )
      .join("\n")}\n`,
  );
  const out = execFileSync(
    process.execPath,
    [
      path.join(REPO, "bin/lamina.js"),
      "sim",
      "run",
      "--model",
      path.join(modelDir, "config.json"),
      "--trace",
      csv,
      "--catalog",
      catalog,
      "--placement",
      placement,
      "--prefill-device",
      "bench-prefill",
      "--decode-device",
      "bench-decode",
      "--max-batch",
      String(SIZES.maxRunning),
      ...(placement === "adrenaline" ? ["--offload", String(offload)] : []),
      "--json",
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  return JSON.parse(out) as Record<string, unknown>;
}

async function main(): Promise<void> {
  const modelDir = ensureBenchModel(path.join(tmpdir(), "lamina-bench-models"), SHAPE);
  const model = await loadModel(modelDir);
  const trace = traceSlice(REQUESTS);
  const ceiling = await decodeCeiling(model);
  const runs: RunResult[] = [];
  for (const mode of ["pd", "adrenaline"] as const) {
    const backend = loadKernelBackend({ threads: 1 });
    const { core, attention } = await buildPdEngine(model, backend, { ...SIZES, model: modelDir, mode });
    try {
      runs.push(await replay(mode, core, attention, trace));
    } finally {
      await attention.close();
    }
  }
  const sims: Record<string, unknown> = {};
  // The simulator's own load-aware bound, and the share N/(M+N) this run's offloading reached.
  const share = runs[1]!.offloadRatioMean / (1 + runs[1]!.offloadRatioMean);
  const simRuns = [
    ["pd", "pd", "auto"],
    ["adrenaline (auto)", "adrenaline", "auto"],
    [`adrenaline (share ${share.toFixed(2)})`, "adrenaline", Number(share.toFixed(2))],
  ] as const;
  for (const [name, p, offload] of simRuns) {
    try {
      sims[name] = simulate(modelDir, trace, p, offload);
    } catch (e) {
      sims[name] = { error: (e as Error).message.split("\n")[0] };
    }
  }
  const f = (x: number, d = 2) => x.toFixed(d);
  console.log(
    `decode ceiling (B_max=${SIZES.maxRunning}, ample KV): ${f(ceiling.throughput, 1)} tok/s, step ${f(ceiling.stepSeconds * 1000, 1)} ms`,
  );
  console.log(
    "| mode | out tok/s | of ceiling | TTFT mean s | TPOT mean ms | TPOT p99 ms | TPOT / ceiling step | mean batch | preempt | prefill KV peak | prefill KV mean | N/M mean | N/M peak | N/M at decisions | bound |",
  );
  console.log(`|${" --- |".repeat(15)}`);
  for (const r of runs)
    console.log(
      `| ${r.mode} | ${f(r.throughput, 1)} | ${f((100 * r.throughput) / ceiling.throughput, 0)}% | ${f(r.ttftMean)} | ${f(r.tpotMean * 1000, 1)} | ${f(r.tpotP99 * 1000, 1)} | ${f(r.tpotMean / ceiling.stepSeconds)}× | ${f(r.runningMean, 1)} | ${r.preemptions} | ${f(100 * r.prefillKvPeak, 0)}% | ${f(100 * r.prefillKvMean, 0)}% | ${f(r.offloadRatioMean)} | ${f(r.offloadRatioPeak)} | ${f(r.offloadRatioAtDecisions)} | ${f(r.offloadBound)} |`,
    );
  const [pd, ad] = runs;
  console.log(
    `adrenaline / pd: throughput ${f(ad!.throughput / pd!.throughput)}×, TPOT mean ${f(ad!.tpotMean / pd!.tpotMean)}×, TTFT mean ${f(ad!.ttftMean / pd!.ttftMean)}×`,
  );
  console.log(`simulator: ${JSON.stringify(summarizeSim(sims))}`);
  writeFileSync(
    OUT,
    `${JSON.stringify({ shape: SHAPE, context: CONTEXT, sizes: SIZES, rateScale: RATE_SCALE, requests: REQUESTS, ceiling, runs, simulator: sims }, null, 2)}\n`,
  );
  console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
}

/** The simulator's figures comparable with the measured ones. */
function summarizeSim(sims: Record<string, unknown>): unknown {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(sims)) {
    const r = v as {
      error?: string;
      throughputTokS?: number;
      tbtMs?: { mean: number };
      ttftMs?: { mean: number };
      avgBatch?: number;
      notes?: unknown;
    };
    out[k] = r.error
      ? { error: r.error }
      : {
          throughputTokS: r.throughputTokS,
          tpotMeanMs: r.tbtMs?.mean,
          ttftMeanS: (r.ttftMs?.mean ?? 0) / 1000,
          avgBatch: r.avgBatch,
          notes: r.notes,
        };
  }
  return out;
}

main().catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
