// Calibration of the simulator against our own engine, every placement from one device profile:
// colocated, one attention worker without and with pipelining, and model worker processes (1 at
// depth 2, or 2 at depth 3 on 4+ cores), each on the decode phase of a small Azure-Conv workload on
// a random-weight model; PD and Adrenaline (bench/pd's trace replay with a
// KV-limited decode instance). Each round measures a device profile, then runs every placement
// (order reversed every other round so drifting load hits all alike); a run is predicted by
// sim/predict-engine.ts from the profiles measured just before and after it (the mean of the two).
// Medians over rounds are compared.
//
//   npx tsc -p tsconfig.json && node dist/bench/calibration/calibrate.js [--rounds 3] [--requests 32] [--pd-requests 24] [--only pd,adrenaline]
//
// Prints predicted against measured per placement and writes bench/results/calibration.json.
import { loadavg } from "node:os";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import { modelFromHfConfig } from "../../src/sim/hf-config.js";
import type { DeviceProfile } from "../../src/sim/profile.js";
import { loadTrace } from "../../src/sim/trace.js";
import { benchArgs } from "../common/flags.js";
import { writeResults } from "../common/results.js";
import { pdSimModel, predictPd } from "../pd/pd-predict.js";
import { calibrationConfig, ensureCalibrationModel } from "./calib-model.js";
import { CACHE_ROOT } from "./paths.js";
import {
  CORES,
  type DecodeContext,
  type Measured,
  PLACEMENTS,
  type PlacementName,
  pdContext,
  runPlacement,
} from "./placements.js";
import { CALIBRATION_EFFORT, measureProfile } from "./profile-run.js";
import { printCalibration, type RoundRow } from "./summary.js";
import { scaledWorkload } from "./workload.js";

const { values } = benchArgs({
  options: {
    rounds: { type: "string", default: "3" },
    requests: { type: "string", default: "32" },
    "pd-requests": { type: "string", default: "24" },
    "rate-scale": { type: "string", default: "4" },
    seed: { type: "string", default: "7" },
    threads: { type: "string" },
    only: { type: "string" },
  },
});
const int = (v: string | undefined, what: string): number => {
  const n = Number(v);
  if (!(Number.isInteger(n) && n > 0)) throw new Error(`--${what} must be a positive integer`);
  return n;
};
const rounds = int(values.rounds, "rounds");
const placements = values.only
  ? values.only.split(",").map((p) => {
      if (!PLACEMENTS.includes(p as PlacementName)) throw new Error(`--only: unknown placement ${p}`);
      return p as PlacementName;
    })
  : PLACEMENTS;

const dtype = "bf16";
const colocatedThreads = values.threads ? int(values.threads, "threads") : CORES;
const backend = loadKernelBackend({ backend: "native" });
const modelDir = ensureCalibrationModel(CACHE_ROOT, "bench", dtype);
const model = await loadModel(modelDir);
const simModel = modelFromHfConfig(calibrationConfig("bench", dtype), "calibration-bench config");
const workload = scaledWorkload(loadTrace("azure-conv"), {
  requests: int(values.requests, "requests"),
  promptDivisor: 8,
  outputDivisor: 8,
  maxPrompt: 512,
  maxOutput: 64,
  seed: int(values.seed, "seed"),
});
const c = model.config;
const blockBytes = 2 * c.numLayers * c.numKvHeads * c.headDim * 2 * 16;
const decode: DecodeContext = {
  backend,
  model,
  modelDir,
  simModel,
  workload,
  cores: CORES,
  colocatedThreads,
  kvBlocks: Math.floor((1 << 30) / blockBytes),
};
const pd = await pdContext(int(values["pd-requests"], "pd-requests"), Number(values["rate-scale"]));
console.log(
  `${backend.describe()}; ${CORES} cores; decode workload ${workload.length} requests, PD trace ${pd.trace.length}`,
);

const rows: RoundRow[] = [];
const profiles: unknown[] = [];
const measure = async (): Promise<DeviceProfile> => {
  const { profile, details } = await measureProfile(
    backend,
    CACHE_ROOT,
    "bench",
    dtype,
    CALIBRATION_EFFORT,
    colocatedThreads,
    () => {},
    [{ model: pd.model, sim: pdSimModel(pd.modelDir) }],
  );
  profiles.push({ ...profile, details });
  console.log(
    `profile ${profiles.length - 1}: host stall ${details.stall.map((x) => `${x.factor.toFixed(3)} at ${x.threads} thread(s)`).join(", ")}; message one-way ${(details.messageLatencyS * 1e6).toFixed(1)} µs; prefill ${((profile.prefill?.flops ?? 0) / 1e9).toFixed(0)} GFLOP/s, at PD's widths ${((profile.modelShapes?.[0]?.prefillFlops ?? 0) / 1e9).toFixed(0)} (weights ${((profile.modelShapes?.[0]?.weightBandwidth ?? 0) / 1e9).toFixed(1)} GB/s against ${((profile.split?.weightBandwidth ?? 0) / 1e9).toFixed(1)}); load ${details.loadAverage[0]!.toFixed(2)}`,
  );
  return profile;
};
let before = await measure();
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? placements : [...placements].reverse();
  const runs: { name: PlacementName; load: number; run: Awaited<ReturnType<typeof runPlacement>> }[] = [];
  for (const name of order) {
    const load = loadavg()[0]!;
    runs.push({ name, load, run: await runPlacement(name, decode, pd) });
  }
  const after = await measure();
  for (const { name, load, run } of runs) {
    const row: RoundRow = {
      round,
      placement: name,
      loadAverage: load,
      measured: run.measured,
      predicted: meanOf(run.predict(before), run.predict(after)),
    };
    rows.push(row);
    console.log(
      `round ${round} ${name.padEnd(15)} measured ${row.measured.tokS.toFixed(1)} tok/s, predicted ${row.predicted.tokS.toFixed(1)}, load ${load.toFixed(2)}`,
    );
  }
  before = after;
}
const summary = printCalibration(rows, placements);
const sensitivity = pdSensitivity(before);
console.log(
  `(load average at the end ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")})`,
);
writeResults("calibration.json", {
  model: simModel,
  backend: backend.describe(),
  cores: CORES,
  workload,
  pdTrace: pd.trace,
  summary,
  sensitivity,
  rows,
  profiles,
});
process.exit(0);

/** The mean of two predictions (profiles before and after a run). */
function meanOf(a: Measured, b: Measured): Measured {
  const m = (x?: number, y?: number) => (x === undefined || y === undefined ? undefined : (x + y) / 2);
  const out: { -readonly [K in keyof Measured]: Measured[K] } = { tokS: (a.tokS + b.tokS) / 2 };
  const ttft = m(a.ttftS, b.ttftS);
  const tpot = m(a.tpotS, b.tpotS);
  const pre = m(a.preemptions, b.preemptions);
  if (ttft !== undefined) out.ttftS = ttft;
  if (tpot !== undefined) out.tpotS = tpot;
  if (pre !== undefined) out.preemptions = pre;
  if (a.stepCheck && b.stepCheck)
    out.stepCheck = {
      medianRatio: (a.stepCheck.medianRatio + b.stepCheck.medianRatio) / 2,
      totalRatio: (a.stepCheck.totalRatio + b.stepCheck.totalRatio) / 2,
    };
  return out;
}

/**
 * How PD's and Adrenaline's predictions move when every step is slower by a factor (the last
 * profile with its host stall raised): the replay has arrivals at fixed times, so slower steps
 * lengthen the queue, the decode instance's KV runs short more often and preemption by recompute
 * adds prefill work, which slows the steps further. Printed so a step-time error can be told from
 * a scheduling one.
 */
function pdSensitivity(profile: DeviceProfile) {
  const out = [];
  console.log("\nPD / Adrenaline prediction with every step slower by a factor (last profile):");
  console.log(
    "factor | PD tok/s | PD preemptions | PD TTFT s | Adrenaline tok/s | Adrenaline preemptions | Adrenaline TTFT s",
  );
  for (const factor of [1, 1.1, 1.2, 1.3, 1.4]) {
    const p: DeviceProfile = {
      ...profile,
      stall: (profile.stall ?? [{ threads: 1, factor: 1 }]).map((s) => ({ ...s, factor: s.factor * factor })),
    };
    const [a, b] = (["pd", "adrenaline"] as const).map((m) => predictPd(p, pd.modelDir, pd.trace, m));
    out.push({ factor, pd: a!, adrenaline: b! });
    console.log(
      `${factor.toFixed(1)} | ${a!.throughputTokS.toFixed(1)} | ${a!.preemptions} | ${a!.ttftMeanS.toFixed(2)} | ${b!.throughputTokS.toFixed(1)} | ${b!.preemptions} | ${b!.ttftMeanS.toFixed(2)}`,
    );
  }
  return out;
}
