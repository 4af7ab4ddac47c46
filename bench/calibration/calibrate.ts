// Calibration: runs the real engine on a small Azure-Conv workload (lengths scaled to a random-weight
// model's context), colocated and disaggregated (one attention worker process over shared memory),
// and compares its measured decode throughput with the simulator's prediction from a device profile
// measured in the same round. Rounds alternate profile → colocated → disaggregated (order flipped
// every round) so that changing load on a shared machine hits all three alike; medians are reported.
// Each engine runs the workload once untimed before the measured pass (a warm cache, as the
// simulator assumes).
//
//   npx tsc -p tsconfig.json && node dist/bench/calibration/calibrate.js [--rounds 3] [--requests 32]
//
// Prints a table (measured, predicted, error %) and writes bench/results/calibration.json.
import { availableParallelism, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { median } from "../../src/bench/stats.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import { modelFromHfConfig } from "../../src/sim/hf-config.js";
import { type DeviceProfile, predictEngineThroughput } from "../../src/sim/profile.js";
import { loadTrace } from "../../src/sim/trace.js";
import { writeResults } from "../common/results.js";
import { calibrationConfig, ensureCalibrationModel } from "./calib-model.js";
import { buildCalibrationCore, calibrationCoreOptions, measureDecode, type Placement } from "./decode-run.js";
import { CACHE_ROOT } from "./paths.js";
import { measureProfile, type ProfileEffort } from "./profile-run.js";
import { scaledWorkload } from "./workload.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    requests: { type: "string", default: "32" },
    seed: { type: "string", default: "7" },
    threads: { type: "string" },
  },
});
const rounds = Number(values.rounds);
const requestsWanted = Number(values.requests);
if (!(Number.isInteger(rounds) && rounds > 0)) throw new Error(`--rounds must be a positive integer`);
if (!(Number.isInteger(requestsWanted) && requestsWanted > 0))
  throw new Error(`--requests must be a positive integer`);

/** Sweeps sized to the workload: batches and contexts it actually runs at. */
const EFFORT: ProfileEffort = {
  batches: [1, 2, 4, 8, 16, 24, 32],
  contexts: [64, 128, 256, 512],
  attentionBatch: 32,
  reps: 5,
  overheadBatches: [1, 16],
  overheadSteps: 16,
  overheadRounds: 1,
  transportBytes: 1 << 20,
};

const dtype = "bf16";
const cores = availableParallelism();
// Colocated runs (and the whole-machine profile) use every core unless told otherwise.
const colocatedThreads = values.threads ? Number(values.threads) : cores;
if (!(Number.isInteger(colocatedThreads) && colocatedThreads > 0))
  throw new Error("--threads must be a positive integer");
const backend = loadKernelBackend({ backend: "native" });
// ensureCalibrationModel reuses a directory only when its config.json is exactly this config,
// so the simulator and the engine see the same model.
const model = await loadModel(ensureCalibrationModel(CACHE_ROOT, "bench", dtype));
const simModel = modelFromHfConfig(calibrationConfig("bench", dtype), "calibration-bench config");
const workload = scaledWorkload(loadTrace("azure-conv"), {
  requests: requestsWanted,
  promptDivisor: 8,
  outputDivisor: 8,
  maxPrompt: 512,
  maxOutput: 64,
  seed: Number(values.seed),
});
const coreOptions = calibrationCoreOptions(workload);
console.log(
  `model ${simModel.name}: ${(simModel.params / 1e6).toFixed(1)}M params, ${backend.describe()}; ` +
    `${workload.length} Azure-Conv requests, mean prompt ${mean(workload.map((r) => r.prompt)).toFixed(0)}, ` +
    `mean output ${mean(workload.map((r) => r.output)).toFixed(1)}`,
);

interface RoundResult {
  round: number;
  placement: Placement;
  loadAverage: number;
  measuredTokS: number;
  predictedTokS: number;
  predictedBeforeAfter: [number, number];
  errorPct: number;
  decodeTokens: number;
  decodeSeconds: number;
  avgBatchPredicted: number;
  tbtBreakdownMs: unknown;
  bottleneck: string;
}
const results: RoundResult[] = [];
const profiles: unknown[] = [];

// Profile → run → profile → run → profile …: each run is predicted from the profiles measured just
// before and just after it (the mean of the two predictions), so slow drifts in load cancel.
let before = await measure();
for (let round = 0; round < rounds; round++) {
  const order: Placement[] =
    round % 2 === 0 ? ["colocated", "disaggregated"] : ["disaggregated", "colocated"];
  for (const placement of order) {
    backend.setThreads(placement === "colocated" ? colocatedThreads : Math.max(1, cores - 1));
    const load = loadavg()[0]!;
    const { core, close } = await buildCalibrationCore(model, backend, placement, coreOptions);
    // The workload runs once untimed on the same engine first: a fresh engine's first pass pays
    // page faults on its new KV cache and activation buffers (one-time costs the simulator's
    // steady-state model leaves out); the second pass is what is compared.
    const m = await measureDecode(core, workload, `${placement} (warm-up)`)
      .then(() => measureDecode(core, workload, placement))
      .finally(close);
    const after = await measure();
    const predict = (profile: DeviceProfile) =>
      predictEngineThroughput(profile, simModel, m.decodeTrace, {
        mode: placement,
        attentionWorkers: 1,
        microBatches: 2,
        maxBatch: workload.length,
      });
    const p0 = predict(before);
    const p1 = predict(after);
    before = after;
    const predicted = (p0.throughputTokS + p1.throughputTokS) / 2;
    const r: RoundResult = {
      round,
      placement,
      loadAverage: load,
      measuredTokS: m.tokensPerS,
      predictedTokS: predicted,
      predictedBeforeAfter: [p0.throughputTokS, p1.throughputTokS],
      errorPct: (100 * (predicted - m.tokensPerS)) / m.tokensPerS,
      decodeTokens: m.decodeTokens,
      decodeSeconds: m.decodeSeconds,
      avgBatchPredicted: p1.avgBatch,
      tbtBreakdownMs: p1.tbtBreakdownMs,
      bottleneck: p1.bottleneck,
    };
    results.push(r);
    console.log(
      `round ${round} ${placement.padEnd(13)} measured ${r.measuredTokS.toFixed(1)} tok/s, predicted ${r.predictedTokS.toFixed(1)} ` +
        `(${r.errorPct >= 0 ? "+" : ""}${r.errorPct.toFixed(1)}%; profiles before/after ${p0.throughputTokS.toFixed(1)}/${p1.throughputTokS.toFixed(1)}), load ${load.toFixed(2)}`,
    );
  }
}

async function measure(): Promise<DeviceProfile> {
  const { profile, details } = await measureProfile(
    backend,
    CACHE_ROOT,
    "bench",
    dtype,
    EFFORT,
    colocatedThreads,
  );
  profiles.push({ ...profile, details });
  return profile;
}

console.log(
  "\nplacement     | measured tok/s (median) | predicted tok/s (median) | error of medians | per-round errors",
);
const summary = (["colocated", "disaggregated"] as const).map((placement) => {
  const rs = results.filter((r) => r.placement === placement);
  const measured = median(rs.map((r) => r.measuredTokS));
  const predicted = median(rs.map((r) => r.predictedTokS));
  const errorPct = (100 * (predicted - measured)) / measured;
  console.log(
    `${placement.padEnd(13)} | ${measured.toFixed(1).padStart(23)} | ${predicted.toFixed(1).padStart(24)} | ${`${errorPct >= 0 ? "+" : ""}${errorPct.toFixed(1)}%`.padStart(16)} | ${rs.map((r) => `${r.errorPct.toFixed(0)}%`).join(", ")}`,
  );
  return {
    placement,
    measuredTokS: measured,
    predictedTokS: predicted,
    errorPct,
    withinTarget: Math.abs(errorPct) <= 20,
  };
});
console.log(
  `(target: within ±20%; load average at the end ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")})`,
);

writeResults("calibration.json", {
  model: simModel,
  backend: backend.describe(),
  cores,
  workload,
  summary,
  results,
  profiles,
});
process.exit(0);

function mean(xs: readonly number[]): number {
  return xs.reduce((s, x) => s + x, 0) / xs.length;
}
