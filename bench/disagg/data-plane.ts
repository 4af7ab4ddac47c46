// The per-layer exchange with an attention worker process, native data plane against the same
// exchange over messages, each against limits measured in the same run:
//   1. Round trip of one layer (post q, post k/v, wait for the output) for 1, 64 and 256 tokens
//      of a hidden-4096 model (32 q / 8 KV heads of 128, bf16 KV), through RemoteAttentionService
//      to a spawned worker over shared memory; the context is one key, so the worker's compute is
//      a few µs and reported beside it. Limit: a native cache-line ping-pong between two processes
//      (1 token), memcpy of the bytes the layer moves (64 and 256 tokens).
//   2. Single-stream decode of a random SmolLM2-135M-shaped model: one attention worker against
//      in-process attention with the same model-side thread; the distribution of the model side's
//      per-layer wait (finishLayer) on the data plane, beside the host's own noise floor on each
//      core (a spinning probe's lost time: interrupts and the host taking the vCPU away).
// Both sides are pinned to their own core where the machine has two.
//
//   node dist/bench/disagg/data-plane.js [--iters 2000] [--gen 64] [--reps 3] [--spin-us µs]
//       [--transport shm|tcp] [--skip-decode]
// With --transport tcp the worker is reached over loopback TCP (the data plane's own socket), and
// each size is also held to a plain native blocking-socket ping-pong of the bytes it sends.
//
// Prints tables and writes bench/results/data-plane.json.
import { availableParallelism, cpus, tmpdir } from "node:os";
import path from "node:path";
import { dataPlaneAddon, type HostJitter } from "../../src/attention/data-plane-native.js";
import { RemoteAttentionService } from "../../src/attention/remote-service.js";
import type { AttentionStep } from "../../src/attention/service.js";
import { median } from "../../src/bench/stats.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import { SpawnedWorker } from "../../src/placement/attention-worker-endpoints.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { writeResults } from "../common/results.js";
import { memcpyGBs, nativeRoundTrip } from "../transport/limits.js";
import { benchPrompt, ensureBenchModel } from "./bench-model.js";
import { canPin, pinProcess, pinSelf } from "./worker-proc.js";

const { values } = benchArgs({
  options: {
    iters: { type: "string", default: "2000" },
    gen: { type: "string", default: "64" },
    "spin-us": { type: "string" },
    reps: { type: "string", default: "3" },
    transport: { type: "string", default: "shm" },
    "skip-decode": { type: "boolean", default: false },
  },
});
const iters = intFlag(values.iters, "iters", 10);
const gen = intFlag(values.gen, "gen", 8);
// Unset: each side's own default spin budget.
const spinMicros = values["spin-us"] === undefined ? undefined : intFlag(values["spin-us"], "spin-us", 0);
const spin = spinMicros === undefined ? {} : { spinMicros };
const reps = intFlag(values.reps, "reps", 1);
const transport = values.transport as "shm" | "tcp";
if (transport !== "shm" && transport !== "tcp")
  throw new Error(`--transport must be shm or tcp, got "${transport}"`);
type Mode = "native" | "messages";
const MODES: Mode[] = ["native", "messages"];

const cores = availableParallelism();
const pinned = canPin(cores);
if (pinned) pinSelf(0);
const backend = loadKernelBackend({ backend: "native", threads: 1 });
const variant = backend.describe();

function spawned(): SpawnedWorker {
  return new SpawnedWorker("bench", {
    transport,
    kvMemory: 1 << 30,
    threads: 1,
    spinMicros,
    log: () => {},
  });
}

function pinWorker(w: SpawnedWorker): void {
  if (pinned && w.pid) pinProcess(w.pid, 1);
}

// ---- 1. one layer's round trip --------------------------------------------------------------
const HEADS = 32;
const KV_HEADS = 8;
const HEAD_DIM = 128;
const LAYERS = 8;
const geometry = {
  numLayers: LAYERS,
  numHeads: HEADS,
  numKvHeads: KV_HEADS,
  headDim: HEAD_DIM,
  blockSize: 16,
  kvDtype: "bf16" as const,
  maxContext: 512,
  maxTokens: 256,
  maxSeqs: 256,
  slidingWindow: null,
};

interface RoundTrip {
  mode: Mode;
  tokens: number;
  medianUs: number;
  p99Us: number;
  workerComputeUs: number;
  /** Round trip less the worker's reported compute, per layer: what the exchange itself costs. */
  exchangeMedianUs: number;
  exchangeP99Us: number;
  bytes: number;
  /** Bytes the layer moves (q, k, v, out) over the exchange's median time. */
  gbPerSecond: number;
}

async function roundTrips(mode: Mode, tokens: number): Promise<RoundTrip> {
  const w = spawned();
  const svc = await RemoteAttentionService.connect([w], {
    partition: "head",
    geometry,
    kvMemory: null,
    microBatches: 1,
    dataPlane: mode === "native",
    ...spin,
  });
  pinWorker(w);
  try {
    if ((svc.drive !== null) !== (mode === "native"))
      throw new Error(`the worker did not take the ${mode} exchange`);
    const step: AttentionStep = {
      microBatch: 0,
      nTokens: tokens,
      nSeqs: tokens,
      seqIds: Int32Array.from({ length: tokens }, (_, i) => i + 1),
      seqStart: Int32Array.from({ length: tokens + 1 }, (_, i) => i),
      positions: new Int32Array(tokens),
    };
    for (let i = 1; i <= tokens; i++) if (!svc.reserve(i, 1)) throw new Error("no KV for the bench");
    const q = new Float32Array(tokens * HEADS * HEAD_DIM).fill(0.01);
    const k = new Float32Array(tokens * KV_HEADS * HEAD_DIM).fill(0.02);
    const v = new Float32Array(tokens * KV_HEADS * HEAD_DIM).fill(0.03);
    const out = new Float32Array(q.length);
    const ns: number[] = [];
    const compute: number[] = [];
    const exchange: number[] = [];
    const steps = Math.ceil(iters / (LAYERS - 1)) + 20;
    for (let s = 0; s < steps; s++) {
      // Between steps the event loop runs, as the engine thread lets it (the control channel's
      // heartbeats go out there: a peer silent for 10 s is dropped).
      await new Promise<void>((resolve) => setImmediate(resolve));
      for (let layer = 0; layer < LAYERS; layer++) {
        const a0 = svc.attentionMicros;
        const t0 = process.hrtime.bigint();
        svc.beginLayer(layer, step, q);
        const pending = svc.finishLayer(layer, step, k, v, out);
        if (pending) await pending;
        const dt = Number(process.hrtime.bigint() - t0);
        // Layer 0 also carries the step header; the first steps warm both sides up.
        if (layer > 0 && s >= 20) {
          ns.push(dt);
          compute.push(svc.attentionMicros - a0);
          exchange.push(dt - 1000 * (svc.attentionMicros - a0));
        }
      }
    }
    const pct = (xs: number[], p: number) =>
      xs.sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)]! / 1000;
    const bytes = 4 * (q.length + k.length + v.length + out.length);
    const ex = pct(exchange, 0.5);
    return {
      mode,
      tokens,
      medianUs: pct(ns, 0.5),
      p99Us: pct(ns, 0.99),
      // The mean: each reply carries whole µs, the remainder carried into the next reply.
      workerComputeUs: compute.reduce((a, b) => a + b, 0) / compute.length,
      exchangeMedianUs: ex,
      exchangeP99Us: pct(exchange, 0.99),
      bytes,
      gbPerSecond: bytes / (ex * 1e-6) / 1e9,
    };
  } finally {
    await svc.close();
  }
}

const cacheLine = await nativeRoundTrip("shm", 0, pinned ? 1 : null);
const trips: (RoundTrip & { memcpyGBs: number; socketUs: number | null })[] = [];
for (const tokens of [1, 64, 256]) {
  // TCP's limit: a plain blocking-socket ping-pong of the bytes the layer sends (q, k, v).
  const sent = 4 * tokens * (HEADS + 2 * KV_HEADS) * HEAD_DIM;
  const socket = transport === "tcp" ? (await nativeRoundTrip("tcp", sent, pinned ? 1 : null)).median : null;
  for (const mode of MODES) {
    const r = await roundTrips(mode, tokens);
    trips.push({ ...r, memcpyGBs: memcpyGBs(r.bytes), socketUs: socket });
  }
}
console.log(
  `\nCPU: ${cpus()[0]?.model ?? "?"}, ${cores} cores${pinned ? " (model side and worker pinned apart)" : ""}; ${variant}; transport ${transport}`,
);
console.log(
  `native cache-line ping-pong between two processes: median ${cacheLine.median.toFixed(2)} µs, p99 ${cacheLine.p99.toFixed(2)} µs`,
);
console.log(
  "| exchange | tokens | round trip median µs | p99 µs | worker compute µs (mean) | exchange median µs | exchange p99 µs | exchange × ping-pong | GB/s moved | × memcpy |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const r of trips)
  console.log(
    `| ${r.mode} | ${r.tokens} | ${r.medianUs.toFixed(1)} | ${r.p99Us.toFixed(1)} | ${r.workerComputeUs.toFixed(1)} | ${r.exchangeMedianUs.toFixed(1)} | ${r.exchangeP99Us.toFixed(1)} | ${(r.exchangeMedianUs / cacheLine.median).toFixed(1)} | ${r.gbPerSecond.toFixed(2)} | ${(r.gbPerSecond / r.memcpyGBs).toFixed(2)} |`,
  );

if (transport === "tcp") {
  console.log("| exchange | tokens | exchange median µs | native socket ping-pong µs | × socket ping-pong |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const r of trips)
    console.log(
      `| ${r.mode} | ${r.tokens} | ${r.exchangeMedianUs.toFixed(1)} | ${r.socketUs!.toFixed(1)} | ${(r.exchangeMedianUs / r.socketUs!).toFixed(2)} |`,
    );
}

// ---- 2. single-stream decode ------------------------------------------------------------------
const shape = {
  hidden: 576,
  layers: 30,
  heads: 9,
  kvHeads: 3,
  intermediate: 1536,
  maxPositions: 1024,
  dtype: "bf16" as const,
};
const model = await loadModel(ensureBenchModel(path.join(tmpdir(), "lamina-bench-models"), shape));
type Placement = "in-process" | Mode;

/** The model side's per-layer waits on the data plane (µs), every rep's decode after its first token. */
const layerWaits: number[] = [];

async function decode(placement: Placement): Promise<{ tokPerS: number; perLayerUs: number }> {
  // One token a step (no speculative decoding): the exchange per token is what is measured.
  const opts = { maxRunning: 1, maxTokensPerStep: 512, pipelineDepth: 1, speculativeTokens: 0 };
  const w = placement === "in-process" ? null : spawned();
  const svc = w
    ? await RemoteAttentionService.connect([w], {
        partition: "head",
        geometry: resolveSizes(model, opts).geometry,
        kvMemory: null,
        microBatches: 1,
        dataPlane: placement === "native",
        ...spin,
      })
    : undefined;
  if (w) pinWorker(w);
  try {
    const core = buildColocatedEngine(model, backend, opts, svc);
    // Each layer's wait for its output, as the engine thread sees it (depth 1: finishLayer returns
    // with the output in place). Preallocated, so timing adds no allocation to the loop.
    const waits = new Float64Array(gen * shape.layers + shape.layers);
    let nWaits = 0;
    let timing = false;
    if (svc && placement === "native") {
      const finish = svc.finishLayer.bind(svc);
      svc.finishLayer = (layer, step, k, v, out) => {
        const t = performance.now();
        const r = finish(layer, step, k, v, out);
        if (timing && nWaits < waits.length) waits[nWaits++] = (performance.now() - t) * 1000;
        return r;
      };
    }
    const params = resolveSamplingParams({ temperature: 0, maxTokens: gen, ignoreEos: true });
    core.add({ id: "s", promptTokenIds: benchPrompt(32, 0), params });
    let t0 = 0;
    let tokens = 0;
    let first = true;
    while (core.hasWork) {
      const events = await core.runStep();
      const n = events.reduce((a, e) => a + e.tokenIds.length, 0);
      if (first && n > 0) {
        first = false;
        timing = true;
        t0 = performance.now();
        continue;
      }
      tokens += n;
    }
    const s = (performance.now() - t0) / 1000;
    for (let i = 0; i < nWaits; i++) layerWaits.push(waits[i]!);
    return { tokPerS: tokens / s, perLayerUs: (s / tokens / shape.layers) * 1e6 };
  } finally {
    await svc?.close();
  }
}

/** The noise floor of both cores in this run: a spinning probe's lost time on each (1 s each). */
function hostJitter(): (HostJitter & { cpu: number })[] {
  const dp = dataPlaneAddon();
  if (typeof dp === "string") return [];
  return (pinned ? [0, 1] : [-1]).map((cpu) => ({ cpu, ...dp.dpHostJitter(1000, cpu) }));
}
const jitterBefore = values["skip-decode"] ? [] : hostJitter();
const decodes: Record<Placement, number[]> = { "in-process": [], native: [], messages: [] };
for (let r = 0; r < (values["skip-decode"] ? 0 : reps); r++)
  for (const p of ["in-process", "native", "messages"] as const) decodes[p].push((await decode(p)).tokPerS);
const jitterAfter = values["skip-decode"] ? [] : hostJitter();
if (!values["skip-decode"]) printDecodes();
function printDecodes(): void {
  const local = median(decodes["in-process"]);
  console.log(
    `\nsingle-stream decode, ${gen} tokens, SmolLM2-135M shape (random bf16 weights), model side 1 thread, median of ${reps}:`,
  );
  console.log("| attention | decode tok/s | × in-process | added per layer µs |");
  console.log("| --- | ---: | ---: | ---: |");
  for (const p of ["in-process", "native", "messages"] as const) {
    const t = median(decodes[p]);
    const added = ((1 / t - 1 / local) / shape.layers) * 1e6;
    console.log(
      `| ${p} | ${t.toFixed(1)} | ${(t / local).toFixed(2)} | ${p === "in-process" ? "–" : added.toFixed(1)} |`,
    );
  }
  const w = waitSummary();
  if (w)
    console.log(
      `\nnative data plane, the model side's wait per layer (${w.n} layers): median ${w.p50.toFixed(1)} µs, p90 ${w.p90.toFixed(1)}, p99 ${w.p99.toFixed(1)}, mean ${w.mean.toFixed(1)}; layers over 25 µs: ${(100 * w.slowShare).toFixed(1)}% of them, ${(100 * w.slowTime).toFixed(0)}% of the wait`,
    );
  for (const [when, js] of [
    ["before", jitterBefore],
    ["after", jitterAfter],
  ] as const)
    for (const j of js)
      console.log(
        `host noise floor ${when}, core ${j.cpu < 0 ? "any" : j.cpu}${j.pinned || j.cpu < 0 ? "" : " (not pinned)"}: ${(j.gaps / j.seconds).toFixed(0)} interruptions/s, ${((100 * j.lostSeconds) / j.seconds).toFixed(1)}% of the time lost, longest ${j.longestUs.toFixed(0)} µs`,
      );
}

function waitSummary() {
  if (layerWaits.length === 0) return null;
  const xs = Float64Array.from(layerWaits).sort();
  const at = (f: number) => xs[Math.floor((xs.length - 1) * f)]!;
  const sum = xs.reduce((a, b) => a + b, 0);
  const slow = xs.filter((x) => x > 25);
  return {
    n: xs.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    mean: sum / xs.length,
    slowShare: slow.length / xs.length,
    slowTime: slow.reduce((a, b) => a + b, 0) / sum,
  };
}

writeResults(`data-plane-${transport}.json`, {
  machine: { cpu: cpus()[0]?.model ?? "?", cores, pinned, variant },
  transport,
  spinMicros: spinMicros ?? "defaults",
  cacheLinePingPong: cacheLine,
  roundTrips: trips,
  decode: { shape, gen, reps, tokPerS: decodes, layerWaitUs: waitSummary() },
  hostJitter: { before: jitterBefore, after: jitterAfter },
});
