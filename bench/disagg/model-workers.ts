// Model workers as processes (Lamina's (a, b) topology): decode with one model worker process and
// one attention worker process, each on its own core, at a context where their per-step times are
// close (the balanced setting). For each setup the measured step time is set against the ideal,
// max(model time, attention time) per step from the step breakdown (the model workers' time in
// slices, the attention workers' reported compute), and the share of time each side sat idle.
// The same decode with the model side in this process (the engine thread running the slices, the
// placement before model workers) runs alternately as the reference.
//
//   node dist/bench/disagg/model-workers.js [--hidden 1024] [--layers 8] [--heads 16] [--kv-heads 16]
//       [--intermediate 2816] [--dtype bf16] [--batch 32] [--prompt 640] [--gen 48] [--reps 3]
//       [--model-workers 1] [--transport shm|tcp] [--model-plane shm|tcp]
//
// --transport tcp runs every setup with the attention worker over loopback TCP (each model worker
// then has a native data-plane socket of its own to it). --model-plane tcp runs the model worker
// setups with the model plane over TCP (as for model workers on other hosts: each keeps a copy of
// the plane, and the step, the context between replicas and the logits travel as frames).
//
// With --model-workers 2 (depth 3) and at least 3 cores, the second setup is Lamina's rotation over
// two replicas; the bench says how many cores it used.
import { availableParallelism, cpus, tmpdir } from "node:os";
import path from "node:path";
import type { RemoteAttentionService } from "../../src/attention/remote-service.js";
import { median } from "../../src/bench/stats.js";
import type { EngineCore } from "../../src/engine/engine-core.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import { buildEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { ModelWorkerExecutor } from "../../src/runtime/model-worker-executor.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { writeResults } from "../common/results.js";
import { benchPrompt, ensureBenchModel, SHAPE_FLAGS, shapeFromFlags } from "./bench-model.js";
import { canPin, pinProcess, pinSelf } from "./worker-proc.js";

const { values } = benchArgs({
  options: {
    ...SHAPE_FLAGS,
    batch: { type: "string", default: "32" },
    prompt: { type: "string", default: "640" },
    gen: { type: "string", default: "48" },
    reps: { type: "string", default: "3" },
    "model-workers": { type: "string", default: "1" },
    transport: { type: "string", default: "shm" },
    "model-plane": { type: "string", default: "shm" },
    "no-pin": { type: "boolean", default: false },
  },
});
const num = (k: keyof typeof values) => intFlag(values[k] as string, k);
const batch = num("batch");
const promptLen = num("prompt");
const gen = num("gen");
const reps = num("reps");
const modelWorkers = num("model-workers");
const transport = values.transport as string;
if (transport !== "shm" && transport !== "tcp") throw new Error(`--transport: shm or tcp (got ${transport})`);
const modelPlane = values["model-plane"] as string;
if (modelPlane !== "shm" && modelPlane !== "tcp")
  throw new Error(`--model-plane: shm or tcp (got ${modelPlane})`);
const shape = shapeFromFlags(values, promptLen + gen + 16);

const cores = availableParallelism();
const pinned = !values["no-pin"] && canPin(cores);
// Core 0: this process and the model side; the last core: the attention worker; model workers
// beyond the first get cores of their own where there are any.
if (pinned) pinSelf(0);
const dir = ensureBenchModel(path.join(tmpdir(), "lamina-bench-models"), shape);
const model = await loadModel(dir);
const backend = loadKernelBackend({ backend: "native", threads: 1 });

interface SetupResult {
  setup: string;
  decodeTokensPerSecond: number;
  stepMs: number;
  modelMs: number;
  attentionMs: number;
  idealMs: number;
  overIdeal: number;
  modelIdleShare: number;
  attentionIdleShare: number;
  steps: number;
}

/** The attention worker processes of a core (spawned ones), for pinning. */
function attentionPids(core: EngineCore): number[] {
  const service = core.attention as RemoteAttentionService;
  return service.workerPids().map((w) => w.pid);
}

async function run(setup: string, o: EngineOptions): Promise<SetupResult> {
  const core = await buildEngine(model, backend, {
    model: dir,
    maxRunning: batch,
    maxTokensPerStep: 512,
    kvDtype: "f32",
    kvMemory: 4 * 2 ** 30,
    attentionWorkers: 1,
    speculativeTokens: 0, // one token a step: the placements' steps are compared
    ...o,
  });
  const ex = core.executor instanceof ModelWorkerExecutor ? core.executor : null;
  if (pinned) {
    for (const pid of attentionPids(core)) pinProcess(pid, cores - 1);
    ex?.pids().forEach((pid, r) => {
      pinProcess(pid, r === 0 ? 0 : Math.min(r, cores - 2));
    });
  }
  const service = core.attention as RemoteAttentionService;
  try {
    const params = resolveSamplingParams({ temperature: 0, maxTokens: gen, ignoreEos: true });
    for (let i = 0; i < batch; i++)
      core.add({ id: `s${i}`, promptTokenIds: benchPrompt(promptLen, i), params });
    const got = new Map<string, number>();
    let decoding = false;
    let t0 = 0;
    let s0 = core.stats().timing;
    let a0 = 0;
    let tokens = 0;
    const reported = () => (ex ? ex.reportedAttentionSeconds() : service.attentionMicros / 1e6);
    while (core.hasWork) {
      const events = await core.runStep();
      for (const ev of events)
        if (ev.error) throw new Error(`${setup}: request ${ev.requestId}: ${ev.error}`);
      if (decoding) for (const ev of events) tokens += ev.tokenIds.length;
      for (const ev of events) got.set(ev.requestId, (got.get(ev.requestId) ?? 0) + ev.tokenIds.length);
      if (!decoding && got.size === batch && [...got.values()].every((n) => n >= 1)) {
        decoding = true;
        t0 = performance.now();
        s0 = core.stats().timing;
        a0 = reported();
      }
      if (decoding && events.some((e) => e.finished)) break;
    }
    const wall = (performance.now() - t0) / 1000;
    const s1 = core.stats().timing;
    const steps = s1.steps - s0.steps;
    const model = s1.model - s0.model;
    const attention = reported() - a0;
    // Per micro-batch step: the slower side's busy time, were the two perfectly overlapped.
    const replicas = ex ? modelWorkers : 1;
    const idealMs = (1000 * Math.max(model / replicas, attention)) / steps;
    const stepMs = (1000 * wall) / steps;
    return {
      setup,
      decodeTokensPerSecond: tokens / wall,
      stepMs,
      modelMs: (1000 * model) / steps,
      attentionMs: (1000 * attention) / steps,
      idealMs,
      overIdeal: stepMs / idealMs,
      modelIdleShare: 1 - model / replicas / wall,
      attentionIdleShare: 1 - attention / wall,
      steps,
    };
  } finally {
    await core.executor.close?.();
    await service.close();
  }
}

const setups: [string, EngineOptions][] = [
  ["engine thread runs the slices, depth 2", { pipelineDepth: 2 }],
  [
    `${modelWorkers} model worker(s), depth ${modelWorkers + 1}`,
    { modelWorkers, pipelineDepth: modelWorkers + 1, modelPlane },
  ],
  [`${modelWorkers} model worker(s), depth 1`, { modelWorkers, pipelineDepth: 1, modelPlane }],
];
const results: SetupResult[][] = setups.map(() => []);
for (let rep = 0; rep < reps; rep++) {
  // Alternate the order so that a drift in the host's speed falls on every setup alike.
  const order = rep % 2 === 0 ? [0, 1, 2] : [2, 1, 0];
  for (const i of order) results[i]!.push(await run(setups[i]![0], { ...setups[i]![1], transport }));
}
const pick = (rs: SetupResult[]) => {
  const m = median(rs.map((r) => r.decodeTokensPerSecond));
  return rs.find((r) => r.decodeTokensPerSecond === m) ?? rs[0]!;
};
const medians = results.map(pick);
const cpu = cpus()[0]?.model ?? "?";
console.log(
  `\n${cpu}, ${cores} cores, attention over ${transport}, model plane over ${modelPlane}${pinned ? " (pinned: model side core 0, attention worker core " + (cores - 1) + ")" : ""}; batch ${batch}, context ${promptLen}..${promptLen + gen}, ${shape.layers} layers of hidden ${shape.hidden} ${shape.dtype}; median of ${reps}`,
);
console.log(
  "| setup | decode tok/s | step ms | model ms/step | attention ms/step | ideal ms | × ideal | model idle | attention idle |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const r of medians)
  console.log(
    `| ${r.setup} | ${r.decodeTokensPerSecond.toFixed(1)} | ${r.stepMs.toFixed(2)} | ${r.modelMs.toFixed(2)} | ${r.attentionMs.toFixed(2)} | ${r.idealMs.toFixed(2)} | ${r.overIdeal.toFixed(2)} | ${(100 * r.modelIdleShare).toFixed(0)}% | ${(100 * r.attentionIdleShare).toFixed(0)}% |`,
  );
const ratio = medians[1]!.decodeTokensPerSecond / medians[0]!.decodeTokensPerSecond;
console.log(`model worker process / engine-thread model side: ${ratio.toFixed(2)}× decode throughput`);
writeResults(
  `disagg-model-workers${transport === "tcp" ? "-tcp" : ""}${modelPlane === "tcp" ? "-plane-tcp" : ""}.json`,
  {
    machine: { cpu, cores, pinned },
    shape,
    batch,
    prompt: promptLen,
    gen,
    modelWorkers,
    transport,
    modelPlane,
    results,
    medians,
    ratio,
  },
);
