// Staggered pipelining (Lamina §2, n = 2 batches on one model replica): decode throughput with
// pipeline depth 2 against depth 1, one model side (this process, 1 kernel thread) and one
// attention worker process (1 thread), each pinned to its own core. Prints the model-only and
// attention-only step times first (they decide the best possible gain), then each depth's
// throughput and per-step breakdown for both sides, and the gain as a share of its limit.
//
//   node dist/bench/disagg/pipelining.js [--hidden 1024] [--layers 8] [--heads 16] [--kv-heads 16]
//       [--intermediate 2816] [--dtype bf16] [--kv-dtype f32] [--batch 32] [--prompt 640] [--gen 64]
//       [--transport shm|tcp] [--exchange native|messages] [--reps 1]
//
// With --reps n the two depths alternate (1, 2, then 2, 1, ...) so drifts in the shared host's
// speed fall on both alike; the gain reported is the median of the repetitions' gains.
//
// shm (default): the worker is spawned over a shared-memory ring, the same-host transport; tcp: a
// `lamina attention-worker` process reached over loopback TCP.
//
// The engine staggers the micro-batches across steps (one is sampled and relaunched while the other
// is still in flight), so steps pay no pipeline fill and drain. 8 layers by default; real models
// have 16–80.
import { availableParallelism, cpus, tmpdir } from "node:os";
import path from "node:path";
import { RemoteAttentionService } from "../../src/attention/remote-service.js";
import { median } from "../../src/bench/stats.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import type { DType } from "../../src/model/tensor.js";
import { AddressedWorker, SpawnedWorker } from "../../src/placement/attention-worker-endpoints.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import type { CoreOptions } from "../../src/placement/options.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { writeResults } from "../common/results.js";
import { benchPrompt, ensureBenchModel, SHAPE_FLAGS, shapeFromFlags } from "./bench-model.js";
import { canPin, pinProcess, pinSelf, startAttentionWorker } from "./worker-proc.js";

const { values } = benchArgs({
  options: {
    ...SHAPE_FLAGS,
    "kv-dtype": { type: "string", default: "f32" },
    batch: { type: "string", default: "32" },
    prompt: { type: "string", default: "640" },
    gen: { type: "string", default: "64" },
    "no-pin": { type: "boolean", default: false },
    transport: { type: "string", default: "shm" },
    exchange: { type: "string", default: "native" },
    reps: { type: "string", default: "1" },
  },
});
const num = (k: keyof typeof values) => intFlag(values[k] as string, k);
const batch = num("batch");
const promptLen = num("prompt");
const gen = num("gen");
const reps = num("reps");
const shape = shapeFromFlags(values, promptLen + gen + 16);
const kvDtype = values["kv-dtype"] as DType;
// shm only: the per-layer exchange on the native data plane (default) or over the ring's messages.
const exchange = values.exchange;
if (exchange !== "native" && exchange !== "messages")
  throw new Error(`--exchange must be native or messages, got "${exchange}"`);
const transport = values.transport;
if (transport !== "shm" && transport !== "tcp")
  throw new Error(`--transport must be shm or tcp, got "${transport}"`);

// Counted before pinning: afterwards this process sees only its own core.
const cores = availableParallelism();
const pinned = !values["no-pin"] && canPin(cores);
if (pinned) pinSelf(0);
const dir = ensureBenchModel(path.join(tmpdir(), "lamina-bench-models"), shape);
const model = await loadModel(dir);
const backend = loadKernelBackend({ backend: "native", threads: 1 });
const token = "disagg-bench-token-0123456789";
const worker = transport === "tcp" ? await startAttentionWorker(token, "4GiB", pinned ? 1 : null) : null;

interface DepthResult {
  depth: number;
  decodeTokensPerSecond: number;
  stepMs: number;
  modelMs: number;
  attentionMs: number;
  transportMs: number;
  modelIdleShare: number;
  attentionIdleShare: number;
  steps: number;
}

async function runDepth(depth: number): Promise<DepthResult> {
  const opts: CoreOptions = {
    maxRunning: batch,
    // Room for every sequence's decode token beside a prompt chunk, so large batches finish
    // admitting before their first sequences finish.
    maxTokensPerStep: Math.max(512, 2 * batch),
    pipelineDepth: depth,
    kvDtype,
    speculativeTokens: 0, // one token a step: depths are compared by their steps
  };
  const endpoint = worker
    ? new AddressedWorker("bench", "127.0.0.1", worker.port, token, () => {})
    : new SpawnedWorker("bench", { transport: "shm", kvMemory: 4 * 2 ** 30, threads: 1, log: () => {} });
  const service = await RemoteAttentionService.connect([endpoint], {
    partition: "head",
    geometry: resolveSizes(model, opts).geometry,
    kvMemory: null,
    microBatches: depth,
    dataPlane: exchange === "native",
  });
  // A spawned worker is pinned to the other core once it runs (all its threads).
  if (pinned && endpoint instanceof SpawnedWorker && endpoint.pid) pinProcess(endpoint.pid, 1);
  try {
    const core = buildColocatedEngine(model, backend, opts, service);
    const params = resolveSamplingParams({ temperature: 0, maxTokens: gen, ignoreEos: true });
    for (let i = 0; i < batch; i++)
      core.add({ id: `s${i}`, promptTokenIds: benchPrompt(promptLen, i), params });
    const got = new Map<string, number>();
    let t0 = 0;
    let s0 = core.stats().timing;
    let a0 = 0;
    let tokens = 0;
    let decoding = false;
    while (core.hasWork) {
      const events = await core.runStep();
      if (decoding) for (const ev of events) tokens += ev.tokenIds.length;
      for (const ev of events) got.set(ev.requestId, (got.get(ev.requestId) ?? 0) + ev.tokenIds.length);
      // Decode starts once every sequence has its first token (prefill done).
      if (!decoding && got.size === batch && [...got.values()].every((n) => n >= 1)) {
        decoding = true;
        t0 = performance.now();
        s0 = core.stats().timing;
        a0 = service.attentionMicros;
      }
      if (decoding && events.some((e) => e.finished)) break;
    }
    const wall = (performance.now() - t0) / 1000;
    const s1 = core.stats().timing;
    const steps = s1.steps - s0.steps;
    if (!(steps > 0))
      throw new Error(
        `depth ${depth}: no decode step was measured (sequences finished before the last one had its first token); raise --gen (now ${gen}) or lower --batch or --prompt`,
      );
    const attention = (service.attentionMicros - a0) / 1e6;
    return {
      depth,
      decodeTokensPerSecond: tokens / wall,
      stepMs: (1000 * wall) / steps,
      modelMs: (1000 * (s1.model - s0.model)) / steps,
      attentionMs: (1000 * attention) / steps,
      transportMs: (1000 * (s1.transport - s0.transport)) / steps,
      modelIdleShare: 1 - (s1.model - s0.model) / wall,
      attentionIdleShare: 1 - attention / wall,
      steps,
    };
  } finally {
    await service.close();
  }
}

const fmt = (r: DepthResult) =>
  `| ${r.depth} | ${r.decodeTokensPerSecond.toFixed(1)} | ${r.stepMs.toFixed(1)} | ${r.modelMs.toFixed(1)} | ${r.attentionMs.toFixed(1)} | ${r.transportMs.toFixed(1)} | ${(100 * r.modelIdleShare).toFixed(0)}% | ${(100 * r.attentionIdleShare).toFixed(0)}% |`;

try {
  const pairs: { d1: DepthResult; d2: DepthResult; speedup: number; limit: number }[] = [];
  for (let rep = 0; rep < reps; rep++) {
    // Alternate the order so that a drift in the host's speed does not always favour one depth.
    const first = rep % 2 === 0 ? 1 : 2;
    const a = await runDepth(first);
    const b = await runDepth(3 - first);
    const d1 = first === 1 ? a : b;
    const d2 = first === 1 ? b : a;
    const speedup = d2.decodeTokensPerSecond / d1.decodeTokensPerSecond;
    // With perfect overlap a step takes the slower side's time; depth 1 takes the sum.
    const limit = (d1.modelMs + d1.attentionMs) / Math.max(d1.modelMs, d1.attentionMs);
    pairs.push({ d1, d2, speedup, limit });
    console.log(
      `\nrepetition ${rep + 1}/${reps}: model-only step ${d1.modelMs.toFixed(1)} ms, attention-only step ${d1.attentionMs.toFixed(1)} ms ` +
        `(batch ${batch}, context ${promptLen}..${promptLen + gen}, measured at depth 1)`,
    );
    console.log(
      "| depth | decode tok/s | step ms | model ms | attention ms | transport ms | model idle | attention idle |",
    );
    console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
    console.log(fmt(d1));
    console.log(fmt(d2));
    console.log(
      `depth 2 / depth 1 decode throughput: ${speedup.toFixed(2)}× ` +
        `(limit from depth-1 side times: ${limit.toFixed(2)}×, i.e. ${((100 * (speedup - 1)) / Math.max(1e-9, limit - 1)).toFixed(0)}% of the possible gain; ` +
        `depth-2 steps take ${(d2.stepMs / Math.max(d2.modelMs, d2.attentionMs)).toFixed(2)}× their slower side)`,
    );
  }
  const speedup = median(pairs.map((p) => p.speedup));
  const limit = median(pairs.map((p) => p.limit));
  console.log(
    `\nmedian over ${reps} repetition${reps === 1 ? "" : "s"}: depth 2 / depth 1 = ${speedup.toFixed(2)}× ` +
      `(gains ${pairs.map((p) => p.speedup.toFixed(2)).join(", ")}; median limit ${limit.toFixed(2)}×)`,
  );
  const out = {
    machine: { cpu: cpus()[0]?.model ?? "?", cores, pinned },
    shape: { ...shape, kvDtype },
    transport,
    exchange,
    batch,
    prompt: promptLen,
    gen,
    repetitions: pairs,
    speedup,
    limit,
  };
  writeResults("disagg-pipelining.json", out);
} finally {
  worker?.child.kill("SIGKILL");
}
