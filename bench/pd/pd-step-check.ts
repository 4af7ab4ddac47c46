/**
 * Where PD's and Adrenaline's predictions go wrong: scheduling or step time. Replays the benchmark's
 * trace slice on the runtime (bench/pd's setup) recording every step's wall time and what it
 * computed; then (1) runs the simulator's replica of the engine (sim/replica) on the same trace with
 * the runtime's own step times in place of the step model: if the scheduling, KV placement and
 * preemption are the runtime's, it lands on the same throughput, preemptions and TTFT; and (2)
 * predicts each recorded step from the device profile (the step model alone), by kind of step.
 *
 *   node dist/bench/pd/pd-step-check.js [--mode pd|adrenaline] [--requests 24] [--rate-scale 4]
 *
 * The profile is the last one bench/calibration/calibrate.js wrote (bench/results/calibration.json).
 * Writes bench/results/pd-step-check-<mode>.json.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { buildPdEngine } from "../../src/placement/build.js";
import type { ModelStep } from "../../src/runtime/step.js";
import { placementCost } from "../../src/sim/predict-engine.js";
import { parseDeviceProfile } from "../../src/sim/profile.js";
import { BlockPool } from "../../src/sim/replica/kv-blocks.js";
import { HybridSpace } from "../../src/sim/replica/kv-space.js";
import { runReplica } from "../../src/sim/replica/run.js";
import type { BatchLoad } from "../../src/sim/replica/step-cost.js";
import { pdContext } from "../calibration/placements.js";
import { benchArgs } from "../common/flags.js";
import { RESULTS_DIR, writeResults } from "../common/results.js";
import { pdPlacement, pdSimModel } from "./pd-predict.js";
import { replay } from "./pd-replay.js";
import { PD_BLOCK_BYTES, PD_CONTEXT, PD_SIZES } from "./pd-setup.js";

const { values } = benchArgs({
  options: {
    mode: { type: "string", default: "pd" },
    requests: { type: "string", default: "24" },
    "rate-scale": { type: "string", default: "4" },
  },
});
const mode = values.mode;
if (mode !== "pd" && mode !== "adrenaline") throw new Error(`--mode must be pd or adrenaline, got ${mode}`);
const requests = Number(values.requests);
const rateScale = Number(values["rate-scale"]);
if (!(Number.isInteger(requests) && requests > 0)) throw new Error("--requests must be a positive integer");
if (!(rateScale > 0)) throw new Error("--rate-scale must be positive");

const saved = JSON.parse(readFileSync(path.join(RESULTS_DIR, "calibration.json"), "utf8")) as {
  profiles: unknown[];
};
const profile = parseDeviceProfile(saved.profiles.at(-1), "calibration.json's last profile");
const c = await pdContext(requests, rateScale);
const sim = pdSimModel(c.modelDir);
const backend = loadKernelBackend({ threads: 1 });
const { core, attention } = await buildPdEngine(c.model, backend, { ...PD_SIZES, model: c.modelDir, mode });

// What each forward pass computed (read before it runs: placement changes when it lands) and its time.
interface Recorded {
  load: BatchLoad;
  seconds: number;
}
const forwards: Recorded[] = [];
const executor = core.executor;
const forward = executor.forward.bind(executor);
executor.forward = async (step: ModelStep, att) => {
  const load = loadOf(step);
  const t0 = performance.now();
  const logits = await forward(step, att);
  forwards.push({ load, seconds: (performance.now() - t0) / 1000 });
  return logits;
};
const stepSeconds: number[] = [];
const runStep = core.runStep.bind(core);
core.runStep = async () => {
  const t0 = performance.now();
  const events = await runStep();
  stepSeconds.push((performance.now() - t0) / 1000);
  return events;
};
const measured = await replay(mode, core, attention, [...c.trace], () => {
  forwards.length = 0;
  stepSeconds.length = 0;
}).finally(() => attention.close());

// (1) The replica on the runtime's own step times.
let k = 0;
const placement = pdPlacement(mode);
const kv = new HybridSpace(
  new BlockPool(Math.floor(PD_SIZES.kvMemory! / PD_BLOCK_BYTES), 16),
  [new BlockPool(Math.floor(PD_SIZES.prefillKvMemory! / PD_BLOCK_BYTES), 16)],
  {
    mode,
    offloadRatio: null,
    maxBatch: PD_SIZES.maxRunning!,
    decodeThreads: PD_SIZES.threads!,
    executorThreads: placement.executorThreads,
    blocksPerRequest: Math.ceil(PD_CONTEXT / 16),
  },
);
const replica = runReplica(
  c.trace.map((t) => ({ arrival: t.at, prompt: t.prompt, output: t.output })),
  {
    maxRunning: PD_SIZES.maxRunning!,
    maxTokensPerStep: PD_SIZES.maxTokensPerStep!,
    prefillInstances: 1,
    kv,
    maxContext: PD_CONTEXT,
    cost: { depth: 1, cycle: () => stepSeconds[Math.min(k++, stepSeconds.length - 1)]! },
  },
);
console.log(`${mode}: ${measured.outputTokens} tokens, ${stepSeconds.length} steps (${backend.describe()})`);
console.log("\n| | tok/s | preemptions | TTFT s | TPOT ms | steps |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
console.log(
  `| runtime | ${measured.throughput.toFixed(1)} | ${measured.preemptions} | ${measured.ttftMean.toFixed(2)} | ${(measured.tpotMean * 1e3).toFixed(1)} | ${stepSeconds.length} |`,
);
console.log(
  `| replica on the runtime's step times | ${replica.throughputTokS.toFixed(1)} | ${replica.preemptions} | ${replica.ttftMeanS.toFixed(2)} | ${(replica.tpotMeanS * 1e3).toFixed(1)} | ${replica.steps} |`,
);

// (2) The step model on each recorded step, by kind.
const cost = placementCost(profile, sim, placement);
const kinds = new Map<string, { n: number; measured: number; predicted: number; tokens: number }>();
const passes: {
  kind: string;
  seqs: number;
  decodeRows: number;
  ctx: number;
  measured: number;
  predicted: number;
}[] = [];
for (const f of forwards) {
  const r = f.load.remote[0]!;
  const kind = `${r.prefillTokens + f.load.ownPrefillTokens > 0 ? "with prompt chunks" : "decode only"}${r.decodeRows > 0 ? ", offloaded rows" : ""}`;
  const e = kinds.get(kind) ?? { n: 0, measured: 0, predicted: 0, tokens: 0 };
  const predicted = cost.cycle([f.load]);
  e.n++;
  e.measured += f.seconds;
  e.predicted += predicted;
  passes.push({
    kind,
    seqs: f.load.seqs,
    decodeRows: f.load.decodeRows,
    ctx: f.load.ownDecodeCtx + r.decodeCtx,
    measured: f.seconds,
    predicted,
  });
  e.tokens += r.prefillTokens + f.load.ownPrefillTokens;
  kinds.set(kind, e);
}
console.log("\nforward passes against the step model (profile of the last calibration):");
console.log("| kind | passes | prompt tokens per pass | measured ms | predicted ms | measured / predicted |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
for (const [kind, e] of kinds)
  console.log(
    `| ${kind} | ${e.n} | ${(e.tokens / e.n).toFixed(0)} | ${((1e3 * e.measured) / e.n).toFixed(2)} | ${((1e3 * e.predicted) / e.n).toFixed(2)} | ${(e.measured / e.predicted).toFixed(3)} |`,
  );
const all = [...kinds.values()].reduce((a, e) => ({ m: a.m + e.measured, p: a.p + e.predicted }), {
  m: 0,
  p: 0,
});
console.log(`all passes: measured / predicted ${(all.m / all.p).toFixed(3)}`);
writeResults(`pd-step-check-${mode}.json`, {
  mode,
  backend: backend.describe(),
  measured,
  replicaOnMeasuredSteps: replica,
  kinds: Object.fromEntries(kinds),
  stepSeconds,
  passes,
});
process.exit(0);

/** The step's load as the replica counts it (sim/replica/run.ts loadOf), from the runtime's step. */
function loadOf(step: ModelStep): BatchLoad {
  const b: BatchLoad = {
    seqs: step.nSeqs,
    decodeRows: 0,
    ownDecodeRows: 0,
    ownDecodeCtx: 0,
    ownPrefillTokens: 0,
    ownPrefillWork: 0,
    remote: [{ decodeRows: 0, decodeCtx: 0, prefillTokens: 0, prefillWork: 0, streamedTokens: 0 }],
  };
  const r = b.remote[0]!;
  for (let s = 0; s < step.nSeqs; s++) {
    const id = step.seqIds[s]!;
    const start = step.positions[step.seqStart[s]!]!;
    const count = step.seqStart[s + 1]! - step.seqStart[s]!;
    const work = 2 * count * (start + count / 2);
    if (attention.prefillTarget(id) >= 0) {
      r.prefillTokens += count;
      r.prefillWork += work;
      if (!attention.isOffloaded(id)) r.streamedTokens += count;
    } else if (count > 1) {
      b.ownPrefillTokens += count;
      b.ownPrefillWork += work;
    } else {
      b.decodeRows++;
      if (attention.isOffloaded(id)) {
        r.decodeRows++;
        r.decodeCtx += start + 1;
      } else {
        b.ownDecodeRows++;
        b.ownDecodeCtx += start + 1;
      }
    }
  }
  return b;
}
