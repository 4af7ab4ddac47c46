// Prefix caching: the simulator's replica of our engine (sim/predict-engine.ts, with its caching
// block pool) against the engine itself, with the cache on and off. A workload of requests that
// share one of a few openings (system prompts) and end in a tail of their own, arriving over time
// (Poisson); an in-process engine (all cores, one micro-batch, no speculative decoding, blocks of
// 16) replays it at the arrival times, the cache on and off alternating over --rounds, measuring
// output throughput, mean time to first token and the prompt tokens found cached. Each run is
// predicted from device profiles measured before and after its round (the mean of the two), as
// calibrate.ts does for every placement.
//
//   npx tsc -p tsconfig.json && node dist/bench/calibration/prefix-check.js [--rounds 2] [--requests 32] [--rate 6]
//
// Prints measured against predicted and writes bench/results/prefix-check.json.
import { availableParallelism, loadavg } from "node:os";
import type { EngineCore } from "../../src/engine/engine-core.js";
import { blockKeys } from "../../src/engine/prefix-keys.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { Sequence } from "../../src/engine/sequence.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { modelFromHfConfig } from "../../src/sim/hf-config.js";
import { placementCost, predictEngineRun } from "../../src/sim/predict-engine.js";
import type { DeviceProfile } from "../../src/sim/profile.js";
import type { ReplicaRequest } from "../../src/sim/replica/run.js";
import { rng } from "../../src/sim/trace.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { writeResults } from "../common/results.js";
import { CALIB_BOS, calibrationConfig, ensureCalibrationModel } from "./calib-model.js";
import { CACHE_ROOT } from "./paths.js";
import { CALIBRATION_EFFORT, measureProfile } from "./profile-run.js";

const { values } = benchArgs({
  options: {
    rounds: { type: "string", default: "2" },
    requests: { type: "string", default: "32" },
    rate: { type: "string", default: "6" },
    seed: { type: "string", default: "11" },
  },
});
const rounds = intFlag(values.rounds, "rounds");
const nRequests = intFlag(values.requests, "requests");
const rate = Number(values.rate);
if (!(rate > 0))
  throw new Error(`--rate must be a positive number of requests a second, got "${values.rate}"`);

const BLOCK = 16;
const OPENINGS = [192, 256, 320, 384];
const dtype = "bf16";
const threads = availableParallelism();
const backend = loadKernelBackend({ backend: "native" });
const model = await loadModel(ensureCalibrationModel(CACHE_ROOT, "bench", dtype));
const simModel = modelFromHfConfig(calibrationConfig("bench", dtype), "calibration-bench config");
const c = model.config;
const kvBlocks = Math.floor((1 << 30) / (2 * c.numLayers * c.numKvHeads * c.headDim * 2 * BLOCK));
const maxContext = 1024;

interface Req {
  readonly id: string;
  readonly at: number;
  readonly tokens: number[];
  readonly output: number;
}

/** The workload: request i opens with opening i mod 4 (its bytes), then 32–160 tokens of its own. */
function workload(): Req[] {
  const r = rng(intFlag(values.seed, "seed"));
  let t = 0;
  return Array.from({ length: nRequests }, (_, i) => {
    t += -Math.log(1 - r()) / rate;
    const o = i % OPENINGS.length;
    const opening = Array.from({ length: OPENINGS[o]! }, (_, j) =>
      j === 0 ? CALIB_BOS : (j * 31 + o * 101) % 256,
    );
    const tail = Array.from({ length: 32 + Math.floor(r() * 128) }, (_, j) => (j * 17 + i * 59 + 7) % 256);
    return { id: `p${i}`, at: t, tokens: [...opening, ...tail], output: 16 + Math.floor(r() * 17) };
  });
}
const reqs = workload();

/** The replica's requests: each prompt's full blocks keyed as the runtime keys them (numbered). */
function replicaRequests(): ReplicaRequest[] {
  const ids = new Map<string, number>();
  const params = resolveSamplingParams({ temperature: 0, maxTokens: 1, ignoreEos: true });
  return reqs.map((q, i) => {
    const full = Math.floor(q.tokens.length / BLOCK);
    const keys = blockKeys(new Sequence(i, q.id, q.tokens, params), BLOCK, full).map((k) => {
      if (!ids.has(k)) ids.set(k, ids.size);
      return ids.get(k)!;
    });
    return { arrival: q.at, prompt: q.tokens.length, output: q.output, blockKeys: keys };
  });
}
const replicaReqs = replicaRequests();

interface Outcome {
  tokS: number;
  ttftS: number;
  cachedTokens: number;
}

/** Replays the workload at its arrival times on a fresh engine; throughput, mean TTFT, cached prompt tokens. */
async function measured(prefixCaching: boolean): Promise<Outcome> {
  const core: EngineCore = buildColocatedEngine(model, backend, {
    maxRunning: nRequests,
    maxTokensPerStep: 1024,
    kvBlocks,
    blockSize: BLOCK,
    maxModelLen: maxContext,
    pipelineDepth: 1,
    speculativeTokens: 0,
    prefixCaching,
  });
  const t0 = performance.now();
  const first = new Map<string, number>();
  let next = 0;
  let tokens = 0;
  let cached = 0;
  let end = 0;
  while (next < reqs.length || core.hasWork) {
    const now = (performance.now() - t0) / 1000;
    while (next < reqs.length && reqs[next]!.at <= now) {
      const q = reqs[next++]!;
      core.add({
        id: q.id,
        promptTokenIds: q.tokens,
        params: resolveSamplingParams({ temperature: 0, maxTokens: q.output, ignoreEos: true }),
      });
    }
    if (!core.hasWork) {
      await new Promise((r) => setTimeout(r, Math.max(0, (reqs[next]!.at - now) * 1000)));
      continue;
    }
    for (const ev of await core.runStep()) {
      if (ev.error) throw new Error(`request ${ev.requestId}: ${ev.error}`);
      const t = (performance.now() - t0) / 1000;
      if (ev.tokenIds.length > 0 && !first.has(ev.requestId)) first.set(ev.requestId, t);
      if (ev.cachedTokens !== undefined) cached += ev.cachedTokens;
      tokens += ev.tokenIds.length;
      end = t;
    }
  }
  const ttft = reqs.reduce((s, q) => s + first.get(q.id)! - q.at, 0) / reqs.length;
  return { tokS: tokens / end, ttftS: ttft, cachedTokens: cached };
}

function predicted(profile: DeviceProfile, prefixCaching: boolean): Outcome {
  const p = predictEngineRun(
    profile,
    simModel,
    replicaReqs,
    { maxRunning: nRequests, maxTokensPerStep: 1024, kvBlocks, blockSize: BLOCK, maxContext, prefixCaching },
    { kind: "colocated", threads },
  );
  return { tokS: p.throughputTokS, ttftS: p.ttftMeanS, cachedTokens: p.cachedTokens };
}

const profiles: DeviceProfile[] = [];
const measure = async () => {
  const { profile } = await measureProfile(backend, CACHE_ROOT, "bench", dtype, CALIBRATION_EFFORT, threads);
  profiles.push(profile);
  // What the replica charges a lone 300-token prompt chunk on this profile.
  const cost = placementCost(profile, simModel, { kind: "colocated", threads });
  const chunk = {
    seqs: 1,
    decodeRows: 0,
    ownDecodeRows: 0,
    ownDecodeCtx: 0,
    ownPrefillTokens: 300,
    ownPrefillWork: 300 * 300,
    remote: [],
  };
  console.log(
    `profile ${profiles.length - 1}: prefill ${((profile.prefill?.flops ?? 0) / 1e9).toFixed(0)} GFLOP/s, context reads ${((profile.prefill?.contextBandwidth ?? 0) / 1e9).toFixed(1)} GB/s (${profile.prefill?.threads} thread); a 300-token chunk from nothing ${(cost.cycle([chunk]) * 1e3).toFixed(1)} ms`,
  );
  return profile;
};
console.log(
  `${backend.describe()}; ${threads} threads; ${nRequests} requests at ${rate}/s, openings of ${OPENINGS.join("/")} tokens, blocks of ${BLOCK}`,
);
await measured(true); // warm-up: the kernels' first calls, the KV pages' first writes
let before = await measure();
const rows: { round: number; cache: string; load: number; measured: Outcome; predicted: Outcome }[] = [];
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? [true, false] : [false, true];
  const runs = [];
  for (const on of order) runs.push({ on, load: loadavg()[0]!, m: await measured(on) });
  const after = await measure();
  for (const { on, load, m } of runs) {
    const a = predicted(before, on);
    const b = predicted(after, on);
    const p = { tokS: (a.tokS + b.tokS) / 2, ttftS: (a.ttftS + b.ttftS) / 2, cachedTokens: a.cachedTokens };
    rows.push({ round, cache: on ? "on" : "off", load, measured: m, predicted: p });
  }
  before = after;
}

console.log(
  "| round | prefix cache | tok/s measured | predicted | pred/meas | TTFT s measured | predicted | pred/meas | cached tokens measured | predicted |",
);
console.log("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows)
  console.log(
    `| ${r.round} | ${r.cache} | ${r.measured.tokS.toFixed(1)} | ${r.predicted.tokS.toFixed(1)} | ${(r.predicted.tokS / r.measured.tokS).toFixed(2)} | ${r.measured.ttftS.toFixed(3)} | ${r.predicted.ttftS.toFixed(3)} | ${(r.predicted.ttftS / r.measured.ttftS).toFixed(2)} | ${r.measured.cachedTokens} | ${r.predicted.cachedTokens} |`,
  );
const on = rows.filter((r) => r.cache === "on");
const off = rows.filter((r) => r.cache === "off");
const ratio = (xs: typeof rows, ys: typeof rows, f: (o: Outcome) => number, side: "measured" | "predicted") =>
  xs.reduce((s, r) => s + f(r[side]), 0) / ys.reduce((s, r) => s + f(r[side]), 0);
console.log(
  `TTFT off / on: measured ${ratio(off, on, (o) => o.ttftS, "measured").toFixed(2)}×, predicted ${ratio(off, on, (o) => o.ttftS, "predicted").toFixed(2)}×`,
);
writeResults("prefix-check.json", {
  backend: backend.describe(),
  threads,
  reqs: replicaReqs,
  rows,
  profiles,
});
process.exit(0);
