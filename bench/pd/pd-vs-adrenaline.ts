/**
 * PD vs Adrenaline on this machine: one decode instance (this process) and one prefill instance
 * (a child process), a random-weight model whose KV, not compute, limits the decode batch, and a
 * slice of the Azure conversation trace replayed at its arrival times (× --rate-scale), lengths
 * clamped to the served context. Prints a table and writes JSON.
 *
 *   node dist/bench/pd/pd-vs-adrenaline.js [--requests 24] [--rate-scale 4] [--reserves default,none] [--out FILE]
 *
 * --reserves runs each mode under each output reserve (util/output-reserve.ts): `default`, the
 * scheduler's, and `none`, the current tokens held and nothing for output (the scheduler before
 * the reserve held only a prompt's first chunk), in that order per mode, so the two are measured
 * side by side.
 *
 * Figures are stated against limits measured in the same run: output throughput against the decode
 * instance's ceiling (a full batch of B_max short requests decoding with ample KV), TPOT against
 * that ceiling's step time, KV use against the prefill executor's capacity. The simulator's
 * prediction for the same shapes, budgets and trace slice (sim/predict-engine.ts, from
 * bench/results/calibration-profile.json when it exists) is printed beside. The setup and the
 * replay are shared with the calibration (bench/calibration/calibrate.ts --only pd,adrenaline).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine, buildPdEngine } from "../../src/placement/build.js";
import { parseDeviceProfile } from "../../src/sim/profile.js";
import { NAMED_OUTPUT_RESERVES } from "../../src/util/output-reserve.js";
import { benchPrompt, ensureBenchModel } from "../disagg/bench-model.js";
import { predictPd } from "./pd-predict.js";
import { type RunResult, replay } from "./pd-replay.js";
import { PD_CONTEXT, PD_SHAPE, PD_SIZES, pdTraceSlice } from "./pd-setup.js";

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
const RESERVE_OPTIONS = NAMED_OUTPUT_RESERVES;
const reservesIdx = process.argv.indexOf("--reserves");
const RESERVES = (reservesIdx >= 0 ? (process.argv[reservesIdx + 1] ?? "") : "default")
  .split(",")
  .map((r) => {
    if (!RESERVE_OPTIONS[r]) throw new Error(`--reserves: unknown reserve "${r}" (default, none)`);
    return r;
  });

const MB = 1 << 20;
const SIZES = PD_SIZES;
const SHAPE = PD_SHAPE;
const CONTEXT = PD_CONTEXT;

/** The limit: B_max short requests decoding together with ample KV (no memory limit). */
async function decodeCeiling(model: LoadedModel): Promise<{ throughput: number; stepSeconds: number }> {
  const backend = loadKernelBackend({ threads: 1 });
  const B = SIZES.maxRunning!;
  const core = buildColocatedEngine(model, backend, { ...SIZES, kvMemory: 256 * MB, speculativeTokens: 0 });
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

async function main(): Promise<void> {
  const modelDir = ensureBenchModel(path.join(tmpdir(), "lamina-bench-models"), SHAPE);
  const model = await loadModel(modelDir);
  const trace = pdTraceSlice(REQUESTS, RATE_SCALE);
  const ceiling = await decodeCeiling(model);
  const runs: (RunResult & { reserve: string })[] = [];
  for (const mode of ["pd", "adrenaline"] as const)
    for (const reserve of RESERVES) {
      const backend = loadKernelBackend({ threads: 1 });
      const { core, attention } = await buildPdEngine(model, backend, {
        ...SIZES,
        model: modelDir,
        mode,
        outputReserve: RESERVE_OPTIONS[reserve]!,
      });
      try {
        runs.push({ ...(await replay(mode, core, attention, trace)), reserve });
      } finally {
        await attention.close();
      }
    }
  const profileFile = path.join(REPO, "bench/results/calibration-profile.json");
  const sims: Record<string, unknown> = {};
  if (existsSync(profileFile)) {
    const profile = parseDeviceProfile(JSON.parse(readFileSync(profileFile, "utf8")), profileFile);
    for (const mode of ["pd", "adrenaline"] as const)
      for (const reserve of RESERVES)
        sims[`${mode} (${reserve} reserve)`] = predictPd(
          profile,
          modelDir,
          trace,
          mode,
          null,
          RESERVE_OPTIONS[reserve],
        );
  }
  const f = (x: number, d = 2) => x.toFixed(d);
  console.log(
    `decode ceiling (B_max=${SIZES.maxRunning}, ample KV): ${f(ceiling.throughput, 1)} tok/s, step ${f(ceiling.stepSeconds * 1000, 1)} ms`,
  );
  console.log(
    "| mode | reserve | out tok/s | of ceiling | TTFT mean s | TPOT mean ms | TPOT p99 ms | TPOT / ceiling step | mean batch | preempt | prefill KV peak | prefill KV mean | N/M mean | N/M peak | N/M at decisions | bound |",
  );
  console.log(`|${" --- |".repeat(16)}`);
  for (const r of runs)
    console.log(
      `| ${r.mode} | ${r.reserve} | ${f(r.throughput, 1)} | ${f((100 * r.throughput) / ceiling.throughput, 0)}% | ${f(r.ttftMean)} | ${f(r.tpotMean * 1000, 1)} | ${f(r.tpotP99 * 1000, 1)} | ${f(r.tpotMean / ceiling.stepSeconds)}× | ${f(r.runningMean, 1)} | ${r.preemptions} | ${f(100 * r.prefillKvPeak, 0)}% | ${f(100 * r.prefillKvMean, 0)}% | ${f(r.offloadRatioMean)} | ${f(r.offloadRatioPeak)} | ${f(r.offloadRatioAtDecisions)} | ${f(r.offloadBound)} |`,
    );
  for (const reserve of RESERVES) {
    const pd = runs.find((r) => r.mode === "pd" && r.reserve === reserve)!;
    const ad = runs.find((r) => r.mode === "adrenaline" && r.reserve === reserve)!;
    console.log(
      `adrenaline / pd (${reserve} reserve): throughput ${f(ad.throughput / pd.throughput)}×, TPOT mean ${f(ad.tpotMean / pd.tpotMean)}×, TTFT mean ${f(ad.ttftMean / pd.ttftMean)}×`,
    );
  }
  if (RESERVES.includes("none") && RESERVES.includes("default"))
    for (const mode of ["pd", "adrenaline"]) {
      const on = runs.find((r) => r.mode === mode && r.reserve === "default")!;
      const off = runs.find((r) => r.mode === mode && r.reserve === "none")!;
      console.log(
        `${mode}, default reserve / none: throughput ${f(on.throughput / off.throughput)}×, TTFT mean ${f(on.ttftMean / off.ttftMean)}×, preemptions ${on.preemptions} against ${off.preemptions}`,
      );
    }
  for (const [mode, p] of Object.entries(sims) as [string, ReturnType<typeof predictPd>][])
    console.log(
      `simulator (replica of the engine, this machine's profile), ${mode}: ${f(p.throughputTokS, 1)} tok/s, TTFT mean ${f(p.ttftMeanS)} s, TPOT mean ${f(p.tpotMeanS * 1000, 1)} ms, mean batch ${f(p.runningMean, 1)}, preemptions ${p.preemptions}${p.offload ? `, bound ${f(p.offload.bound)}` : ""}`,
    );
  writeFileSync(
    OUT,
    `${JSON.stringify({ shape: SHAPE, context: CONTEXT, sizes: SIZES, rateScale: RATE_SCALE, requests: REQUESTS, reserves: RESERVES, ceiling, runs, simulator: sims }, null, 2)}\n`,
  );
  console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
}

main().catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
