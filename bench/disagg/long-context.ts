// Long context under one memory budget (Lamina §2: with the KV cache on attention workers the model
// worker keeps only its weights). One budget M per device: colocated, the model worker's device
// holds weights + activations + KV within M, so the KV gets what is left; disaggregated, the model
// worker holds weights + activations within M and each attention worker gets its own KV budget
// (--kv-memory, default M). Many long requests are submitted at once with a high maxRunning; the
// engine's own admission (KV blocks from CoreOptions.kvMemory / the workers' CONFIGURE grant)
// decides how many decode together. Prints, per placement, the KV capacity the engine reported,
// the analytic capacity (KV bytes per token from the model shape × context) and the largest batch
// that decoded together in one step, with decode throughput; writes bench/results/disagg-long-context.json.
//
//   node dist/bench/disagg/long-context.js [--memory 64MiB] [--kv-memory <size, default --memory>]
//       [--attention-workers 1] [--partition head|request] [--prompt 2048] [--gen auto] [--requests auto]
//       [--max-running 256] [--max-tokens-per-step 512] [--block-size 16] [--hidden 512] [--layers 4]
//       [--heads 8] [--kv-heads 2] [--intermediate 1408] [--dtype bf16] [--kv-dtype f16|bf16|f32|int8]
//       [--pipeline-depth 2] [--out disagg-long-context.json]
//
// --kv-dtype int8 counts its per-(token, KV head) scales in the bytes per token; --out names the
// JSON file under bench/results (long-context-kv-dtype.ts runs this once per KV dtype).
// --gen auto: enough output tokens that the first admitted sequence is still decoding when the
// disaggregated capacity's last one finishes its prefill (with a chunked-prefill token budget a
// few tokens each would end every sequence before the next long prompt is in, and the batch would
// measure prefill pacing, not KV capacity). --requests auto: the larger analytic capacity + 2.
// --pipeline-depth (disaggregated only, default 2, the engine's default): the KV capacity does
// not depend on it.
import { availableParallelism, cpus, tmpdir } from "node:os";
import path from "node:path";
import { kvBytesPerBlock } from "../../src/attention/kv-attention.js";
import { type Partition, RemoteAttentionService } from "../../src/attention/remote-service.js";
import type { AttentionService } from "../../src/attention/service.js";
import { sizeArg } from "../../src/cli/parse.js";
import type { EngineCore } from "../../src/engine/engine-core.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import type { Sequence } from "../../src/engine/sequence.js";
import type { KvDType } from "../../src/kernels/backend.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { KV_DTYPES, kvBytesPerHeadToken } from "../../src/kernels/kv-cache.js";
import { loadModel } from "../../src/model/load.js";
import type { DType } from "../../src/model/tensor.js";
import { AddressedWorker } from "../../src/placement/attention-worker-endpoints.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import type { CoreOptions } from "../../src/placement/options.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import type { SliceExecutor } from "../../src/runtime/executor.js";
import { benchArgs } from "../common/flags.js";
import { writeResults } from "../common/results.js";
import { benchPrompt, ensureBenchModel } from "./bench-model.js";
import { startAttentionWorker } from "./worker-proc.js";

const DTYPES: readonly DType[] = ["f32", "f16", "bf16"];
const PARTITIONS: readonly Partition[] = ["head", "request"];

function fail(message: string): never {
  console.error(`long-context: ${message}`);
  process.exit(2);
}

let values: Record<string, string | boolean | undefined>;
try {
  values = benchArgs({
    options: {
      memory: { type: "string", default: "64MiB" },
      "kv-memory": { type: "string" },
      "attention-workers": { type: "string", default: "1" },
      partition: { type: "string", default: "head" },
      prompt: { type: "string", default: "2048" },
      gen: { type: "string", default: "auto" },
      requests: { type: "string", default: "auto" },
      "max-running": { type: "string", default: "256" },
      "max-tokens-per-step": { type: "string", default: "512" },
      "block-size": { type: "string", default: "16" },
      hidden: { type: "string", default: "512" },
      layers: { type: "string", default: "4" },
      heads: { type: "string", default: "8" },
      "kv-heads": { type: "string", default: "2" },
      intermediate: { type: "string", default: "1408" },
      dtype: { type: "string", default: "bf16" },
      "kv-dtype": { type: "string", default: "f16" },
      "pipeline-depth": { type: "string", default: "2" },
      out: { type: "string", default: "disagg-long-context.json" },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (e) {
  fail((e as Error).message);
}

const str = (k: string): string => values[k] as string;
function int(k: string, min = 1): number {
  const v = Number(str(k));
  if (!Number.isInteger(v) || v < min) fail(`--${k} must be an integer ≥ ${min}, got "${str(k)}"`);
  return v;
}
function intOrAuto(k: string, min = 1): number | null {
  return str(k) === "auto" ? null : int(k, min);
}
function size(k: string): number {
  try {
    return sizeArg(str(k));
  } catch (e) {
    fail(`--${k}: ${(e as Error).message}`);
  }
}
function choice<T extends string>(k: string, choices: readonly T[]): T {
  const v = str(k) as T;
  if (!choices.includes(v)) fail(`--${k} must be one of ${choices.join(", ")}, got "${v}"`);
  return v;
}

const memory = size("memory");
const kvMemory = values["kv-memory"] === undefined ? memory : size("kv-memory");
const workers = int("attention-workers");
const partition = choice("partition", PARTITIONS);
const promptLen = int("prompt", 2);
const genFlag = intOrAuto("gen");
const requestsFlag = intOrAuto("requests");
const maxRunning = int("max-running");
const maxTokensPerStep = int("max-tokens-per-step");
const blockSize = int("block-size");
const depth = int("pipeline-depth");
if (depth > 2) fail(`--pipeline-depth must be 1 or 2, got ${depth}`);
const dtype = choice("dtype", DTYPES);
const kvDtype: KvDType = choice("kv-dtype", KV_DTYPES);
const heads = int("heads");
const kvHeads = int("kv-heads");
const hidden = int("hidden");
if (hidden % heads !== 0) fail(`--hidden (${hidden}) must divide by --heads (${heads})`);
if (heads % kvHeads !== 0) fail(`--heads (${heads}) must be a multiple of --kv-heads (${kvHeads})`);
if (partition === "head" && kvHeads % workers !== 0)
  fail(`--partition head needs --kv-heads (${kvHeads}) to divide by --attention-workers (${workers})`);
if (maxTokensPerStep < maxRunning)
  console.warn(`note: the engine raises the step token budget to --max-running (${maxRunning})`);

// The model's context must hold the prompt and the longest --gen auto can pick (bounded below).
const GEN_AUTO_CAP = 512;
const shape = {
  hidden,
  layers: int("layers"),
  heads,
  kvHeads,
  intermediate: int("intermediate"),
  maxPositions: promptLen + (genFlag ?? GEN_AUTO_CAP) + 16,
  dtype,
};
const headDim = hidden / heads;

const MiB = 1024 * 1024;
const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`;

const dir = ensureBenchModel(path.join(tmpdir(), "lamina-bench-models"), shape);
const model = await loadModel(dir);
const backend = loadKernelBackend({ backend: "native", threads: 1 });

// What the model worker's device holds besides KV: the weights as loaded (the native backend uses
// the loader's buffers as they are) and one activation context per micro-batch lane.
let weightBytes = 0;
for (const t of model.weights.values()) weightBytes += t.data.byteLength;
// One token a step (no speculative decoding) in both placements: batch and KV capacity are compared.
const baseOpts: CoreOptions = {
  maxRunning,
  maxTokensPerStep,
  blockSize,
  kvDtype,
  maxWaiting: 1 << 20,
  speculativeTokens: 0,
};
// A throwaway core (1 KV block) only to read the executor's activation size for these limits.
const contextBytes = (
  buildColocatedEngine(model, backend, {
    ...baseOpts,
    kvBlocks: 1,
    pipelineDepth: 1,
  }).executor as SliceExecutor
).microBatchBytes();

// KV bytes per token from the model shape alone (k and v, every layer, every KV head; int8's scales).
const kvBytesPerToken = shape.layers * kvHeads * kvBytesPerHeadToken(kvDtype, headDim);

/** Tokens one sequence holds at its longest (the last sampled token is never written to the KV). */
const seqTokens = (gen: number) => promptLen + gen - 1;
const seqBlocksTokens = (gen: number) => Math.ceil(seqTokens(gen) / blockSize) * blockSize;

/** Sequences of `gen` output tokens that fit, from bytes alone (KV bytes/token × context). */
function analyticCapacity(placement: "colocated" | "disaggregated", gen: number): number {
  const perSeq = kvBytesPerToken * seqBlocksTokens(gen);
  if (placement === "colocated") return Math.floor(colocatedKv / perSeq);
  // Head partitioning: every worker stores 1/N of each sequence's KV; request: whole sequences each.
  return partition === "head"
    ? Math.floor(kvMemory / (perSeq / workers))
    : workers * Math.floor(kvMemory / perSeq);
}

const colocatedKv = memory - weightBytes - contextBytes;
const disaggModelSide = weightBytes + depth * contextBytes;
const oneSeqMin = kvBytesPerToken * seqBlocksTokens(1);
if (colocatedKv < oneSeqMin)
  fail(
    `--memory ${mib(memory)} leaves the colocated KV ${mib(Math.max(0, colocatedKv))} after weights ${mib(weightBytes)} and activations ${mib(contextBytes)}: not one ${promptLen}-token sequence (${mib(oneSeqMin)}); raise --memory`,
  );
if (disaggModelSide > memory)
  fail(
    `the disaggregated model worker needs weights ${mib(weightBytes)} + ${depth} activation context(s) ${mib(depth * contextBytes)} > --memory ${mib(memory)}`,
  );

// Output length: the first admitted sequence must still decode when the last one that fits has
// been prefilled through the step token budget (which decodes share).
function autoGen(): number {
  let gen = 2;
  for (let i = 0; i < 8; i++) {
    const c = Math.max(analyticCapacity("colocated", gen), analyticCapacity("disaggregated", gen));
    const budget = Math.max(maxTokensPerStep, maxRunning);
    let steps = 0;
    for (let s = 1; s < c; s++) steps += Math.ceil(promptLen / Math.max(1, budget - s));
    const next = Math.min(GEN_AUTO_CAP, steps + 4);
    if (next === gen) break;
    gen = next;
  }
  return gen;
}
const gen = genFlag ?? autoGen();
const capacities = {
  colocated: analyticCapacity("colocated", gen),
  disaggregated: analyticCapacity("disaggregated", gen),
};
const requests = requestsFlag ?? Math.max(capacities.colocated, capacities.disaggregated) + 2;
if (requests <= Math.max(capacities.colocated, capacities.disaggregated))
  console.warn(
    `note: --requests ${requests} ≤ analytic capacity ${Math.max(capacities.colocated, capacities.disaggregated)}: the batch is bounded by the requests, not the KV`,
  );
if (seqTokens(gen) > resolveSizes(model, baseOpts).maxContext)
  fail(
    `prompt ${promptLen} + gen ${gen} exceeds the model context ${resolveSizes(model, baseOpts).maxContext}`,
  );

interface PlacementResult {
  placement: "colocated" | "disaggregated";
  modelWorkerBytes: { weights: number; activations: number; kv: number; total: number };
  attentionWorkers: number;
  kvBudgetPerAttentionWorker: number | null;
  kvBytesPerBlockPerInstance: number;
  /** As the attention service reported (its usage()): blocks per instance. */
  kvBlocks: { worker: string; totalBlocks: number; blockSize: number }[];
  kvCapacityTokens: number;
  kvCapacitySequences: number;
  analyticCapacity: number;
  /** The largest batch held through sustainRounds rounds (an eighth of --gen, at least 8): the figure compared. */
  maxBatch: number;
  /** The largest batch of any one round (admission can overshoot until a preemption). */
  peakBatch: number;
  stepsAtMaxBatch: number;
  decodeOnlySteps: number;
  decodeTokensPerSecond: number;
  generatedTokensPerSecond: number;
  completed: number;
  errors: number;
  preemptions: number;
  wallSeconds: number;
}

/** Tokens of a `seqTokens`-long sequence the reported blocks hold, and how many such sequences. */
function reportedCapacity(att: AttentionService): {
  tokens: number;
  seqs: number;
  blocks: PlacementResult["kvBlocks"];
} {
  const usage = att.usage();
  const blocks = usage.map((u) => ({ worker: u.worker, totalBlocks: u.totalBlocks, blockSize: u.blockSize }));
  const perSeq = Math.ceil(seqTokens(gen) / blockSize);
  if (att instanceof RemoteAttentionService && partition === "request") {
    return {
      tokens: usage.reduce((a, u) => a + u.totalBlocks * u.blockSize, 0),
      seqs: usage.reduce((a, u) => a + Math.floor(u.totalBlocks / perSeq), 0),
      blocks,
    };
  }
  // One instance, or head partitioning: a sequence takes blocks on every instance.
  const min = Math.min(...usage.map((u) => u.totalBlocks));
  return { tokens: min * blockSize, seqs: Math.floor(min / perSeq), blocks };
}

/**
 * The largest batch held through `window` consecutive landings: the best window's smallest batch.
 * A peak alone counts the rounds in which admission ran ahead of the KV until a preemption undid
 * it; a batch held for an eighth of the output length is one the KV actually carried.
 */
function sustainedBatch(perLanding: readonly number[], window: number): number {
  if (perLanding.length === 0) return 0;
  const w = Math.min(window, perLanding.length);
  let best = 0;
  for (let i = 0; i + w <= perLanding.length; i++) {
    let low = Number.POSITIVE_INFINITY;
    for (let j = i; j < i + w && low > best; j++) low = Math.min(low, perLanding[j]!);
    if (low > best) best = low;
  }
  return best;
}
const sustainRounds = Math.max(8, Math.floor(gen / 8));

async function runPlacement(
  placement: PlacementResult["placement"],
  core: EngineCore,
  lanes: number,
  kvOnModel: number,
): Promise<PlacementResult> {
  const params = resolveSamplingParams({ temperature: 0, maxTokens: gen, ignoreEos: true });
  for (let i = 0; i < requests; i++)
    core.add({ id: `r${i}`, promptTokenIds: benchPrompt(promptLen, i), params });
  const cap = reportedCapacity(core.attention);
  let maxBatch = 0;
  let stepsAtMax = 0;
  const recent: number[] = [];
  const perRound: number[] = [];
  let decodeOnlySteps = 0;
  let decodeOnlyTokens = 0;
  let decodeOnlySeconds = 0;
  let generated = 0;
  let completed = 0;
  let errors = 0;
  const t0 = performance.now();
  while (core.hasWork) {
    const sched = core.scheduler;
    const before = new Map<Sequence, number>();
    // Sequences ready to decode: their whole prompt (and output so far) is in the KV but the last token.
    const ready = new Set<string>();
    for (const s of [...sched.running, ...sched.waiting]) {
      before.set(s, s.numComputed);
      if (s.status === "running" && s.output.length > 0 && s.numComputed === s.length - 1)
        ready.add(s.requestId);
    }
    const ts = performance.now();
    const events = await core.runStep();
    const dt = (performance.now() - ts) / 1000;
    let decoded = 0;
    for (const ev of events) {
      generated += ev.tokenIds.length;
      if (ready.has(ev.requestId) && ev.tokenIds.length > 0) decoded++;
      if (ev.finished) {
        if (ev.finishReason === "error") {
          errors++;
          console.warn(`request ${ev.requestId} failed: ${ev.error}`);
        } else completed++;
      }
    }
    let computed = 0;
    for (const [s, n] of before) computed += Math.max(0, s.numComputed - n);
    const prefill = computed - decoded;
    // With pipelining one step lands one of `lanes` micro-batches, so the batch that decodes
    // together is what the last `lanes` landings decoded (each sequence is in one of them).
    recent.push(decoded);
    if (recent.length > lanes) recent.shift();
    const together = recent.reduce((a, b) => a + b, 0);
    perRound.push(together);
    if (together > maxBatch) {
      maxBatch = together;
      stepsAtMax = 0;
    }
    if (together === maxBatch && together > 0) stepsAtMax++;
    if (prefill === 0 && decoded > 0) {
      decodeOnlySteps++;
      decodeOnlyTokens += decoded;
      decodeOnlySeconds += dt;
    }
    if (events.length === 0 && !core.scheduler.running.length && core.scheduler.waiting.length)
      throw new Error(
        `${placement}: a step made no progress with ${core.scheduler.waiting.length} requests waiting (attention worker lost?)`,
      );
  }
  const wall = (performance.now() - t0) / 1000;
  const sustained = sustainedBatch(perRound, lanes * sustainRounds);
  const stats = core.stats();
  const att = core.attention;
  return {
    placement,
    modelWorkerBytes: {
      weights: weightBytes,
      activations: lanes * contextBytes,
      kv: kvOnModel,
      total: weightBytes + lanes * contextBytes + kvOnModel,
    },
    attentionWorkers: att instanceof RemoteAttentionService ? workers : 0,
    kvBudgetPerAttentionWorker: att instanceof RemoteAttentionService ? kvMemory : null,
    kvBytesPerBlockPerInstance: kvBytesPerBlock({
      numLayers: shape.layers,
      numKvHeads: att instanceof RemoteAttentionService && partition === "head" ? kvHeads / workers : kvHeads,
      headDim,
      blockSize,
      kvDtype,
    }),
    kvBlocks: cap.blocks,
    kvCapacityTokens: cap.tokens,
    kvCapacitySequences: cap.seqs,
    analyticCapacity: capacities[placement],
    maxBatch: sustained,
    peakBatch: maxBatch,
    stepsAtMaxBatch: stepsAtMax,
    decodeOnlySteps,
    decodeTokensPerSecond: decodeOnlySeconds > 0 ? decodeOnlyTokens / decodeOnlySeconds : 0,
    generatedTokensPerSecond: generated / wall,
    completed,
    errors,
    preemptions: stats.preemptions,
    wallSeconds: wall,
  };
}

console.log(
  `model: hidden ${hidden}, ${shape.layers} layers, ${heads} q / ${kvHeads} kv heads × ${headDim}, ${dtype} weights ${mib(weightBytes)}; ` +
    `KV ${kvDtype} ${kvBytesPerToken} B/token; activations ${mib(contextBytes)} per context ` +
    `(${maxTokensPerStep} tokens/step, maxRunning ${maxRunning})`,
);
console.log(
  `workload: ${requests} requests × (prompt ${promptLen} + gen ${gen}${genFlag === null ? " auto" : ""}) = ${seqTokens(gen)} KV tokens each; ` +
    `memory budget ${mib(memory)} per device, attention workers ${workers} × ${mib(kvMemory)} KV (${partition}-partitioned)`,
);

const started: Awaited<ReturnType<typeof startAttentionWorker>>[] = [];
const results: PlacementResult[] = [];
try {
  // Colocated: KV in the model worker's process, within what weights and activations leave of M.
  {
    const core = buildColocatedEngine(model, backend, {
      ...baseOpts,
      kvMemory: colocatedKv,
      pipelineDepth: 1,
    });
    try {
      results.push(await runPlacement("colocated", core, 1, colocatedKv));
    } finally {
      await core.attention.close();
    }
    console.log(`colocated done in ${results[0]!.wallSeconds.toFixed(1)} s`);
  }
  // Disaggregated: the model worker keeps weights + activations; KV lives on the attention workers.
  {
    const token = "disagg-long-context-token-0123456789";
    for (let i = 0; i < workers; i++) started.push(await startAttentionWorker(token, String(kvMemory), null));
    const opts: CoreOptions = { ...baseOpts, kvMemory, pipelineDepth: depth };
    const service = await RemoteAttentionService.connect(
      started.map((w, i) => new AddressedWorker(`aw${i}`, "127.0.0.1", w.port, token, () => {})),
      { partition, geometry: resolveSizes(model, opts).geometry, kvMemory, microBatches: depth },
    );
    try {
      const core = buildColocatedEngine(model, backend, opts, service);
      results.push(await runPlacement("disaggregated", core, depth, 0));
    } finally {
      await service.close();
    }
    console.log(`disaggregated done in ${results[1]!.wallSeconds.toFixed(1)} s`);
  }

  const [co, dis] = results as [PlacementResult, PlacementResult];
  // The batch can reach the KV capacity only if there are that many requests.
  const limit = (r: PlacementResult) => Math.min(r.analyticCapacity, requests);
  const limitText = (r: PlacementResult) =>
    r.analyticCapacity <= requests
      ? `capacity ${r.analyticCapacity}`
      : `limit ${requests} (the requests; KV capacity ${r.analyticCapacity})`;
  const pct = (r: PlacementResult) => `${((100 * r.maxBatch) / Math.max(1, limit(r))).toFixed(0)}%`;
  const budget = (r: PlacementResult) =>
    r.placement === "colocated"
      ? `${mib(memory)} (weights ${mib(weightBytes)} + act ${mib(r.modelWorkerBytes.activations)} + KV ${mib(r.modelWorkerBytes.kv)})`
      : `${mib(memory)} model (weights + act ${mib(weightBytes + r.modelWorkerBytes.activations)}) + ${workers} × ${mib(kvMemory)} KV`;
  console.log(
    "\n| placement | memory budget | KV capacity tokens | KV capacity seqs | analytic capacity | max batch sustained | % of limit | decode tok/s | ratio dis/co |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const r of results) {
    const ratio =
      r === dis
        ? `batch ${(dis.maxBatch / Math.max(1, co.maxBatch)).toFixed(2)}×, tok/s ${(dis.decodeTokensPerSecond / Math.max(1e-9, co.decodeTokensPerSecond)).toFixed(2)}×`
        : "1";
    console.log(
      `| ${r.placement} | ${budget(r)} | ${r.kvCapacityTokens} | ${r.kvCapacitySequences} | ${r.analyticCapacity} | ${r.maxBatch} | ${pct(r)} | ${r.decodeTokensPerSecond.toFixed(1)} | ${ratio} |`,
    );
  }
  console.log("");
  for (const r of results)
    console.log(
      `${r.placement}: batch held ${sustainRounds} rounds ${r.maxBatch} = ${pct(r)} of ${limitText(r)} ` +
        `(peak ${r.peakBatch}, ${r.stepsAtMaxBatch} steps at it; ${r.decodeOnlySteps} decode-only steps); ${r.completed}/${requests} completed, ` +
        `${r.errors} errors, ${r.preemptions} preemptions, ${r.generatedTokensPerSecond.toFixed(1)} generated tok/s overall, ` +
        `${r.wallSeconds.toFixed(1)} s; KV blocks ${r.kvBlocks.map((b) => `${b.worker} ${b.totalBlocks}×${b.blockSize}`).join(", ")}`,
    );
  console.log(
    "\nnote: decode tok/s is over decode-only steps; colocated runs on 1 kernel thread, disaggregated on 1 (model) + 1 per attention worker, so compare throughput with that in mind.",
  );
  const out = {
    machine: { cpu: cpus()[0]?.model ?? "?", cores: availableParallelism() },
    shape: { ...shape, kvDtype, headDim },
    memory,
    kvMemory,
    attentionWorkers: workers,
    partition,
    prompt: promptLen,
    gen,
    requests,
    maxRunning,
    maxTokensPerStep,
    blockSize,
    weightBytes,
    activationBytesPerContext: contextBytes,
    kvBytesPerToken,
    results,
    ratio: {
      maxBatch: dis.maxBatch / Math.max(1, co.maxBatch),
      kvCapacityTokens: dis.kvCapacityTokens / Math.max(1, co.kvCapacityTokens),
      decodeTokensPerSecond: dis.decodeTokensPerSecond / Math.max(1e-9, co.decodeTokensPerSecond),
    },
  };
  writeResults(str("out"), out);
} finally {
  for (const w of started) w.child.kill("SIGKILL");
}
