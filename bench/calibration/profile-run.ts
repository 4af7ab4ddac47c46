import { availableParallelism, loadavg, totalmem } from "node:os";
import type { KernelBackend } from "../../src/kernels/backend.js";
import { loadModel } from "../../src/model/load.js";
import type { DType } from "../../src/model/tensor.js";
import type { LoadedModel } from "../../src/model/types.js";
import { measurePrefillChunk } from "../../src/placement/prefill-partition.js";
import { defaultKvDtype } from "../../src/placement/sizes.js";
import { kvBytesPerToken, matmulParams, queryDim } from "../../src/sim/cost-model.js";
import { modelFromHfConfig } from "../../src/sim/hf-config.js";
import type { DeviceProfile, GemmFit } from "../../src/sim/profile.js";
import type { SimModel } from "../../src/sim/types.js";
import { type CalibrationShape, calibrationConfig, ensureCalibrationModel } from "./calib-model.js";
import { measureContextReads } from "./measure-context.js";
import { type EngineOverheads, measureEngineOverheads, measureShmLink } from "./measure-engine.js";
import { type KvHandoffCost, measureKvHandoff } from "./measure-handoff.js";
import {
  type AttentionSweep,
  cacheEvictor,
  decodeAttentionBetween,
  type GemmSweep,
  measureAttention,
  measureGemm,
} from "./measure-kernels.js";
import { measureStallWindows, STALL_WINDOWS, type StallSample } from "./measure-stall.js";

/** How much measuring to do: the benchmark's full sweep or a test's quick one. */
export interface ProfileEffort {
  readonly batches: readonly number[];
  readonly contexts: readonly number[];
  readonly attentionBatch: number;
  readonly reps: number;
  readonly overheadBatches: readonly number[];
  readonly overheadSteps: number;
  readonly overheadRounds: number;
  readonly transportBytes: number;
  /** Seconds of the sustained loop the host stall is measured on, per thread count. */
  readonly stallSeconds: number;
}

/** Sweeps sized to the calibration's workloads (calibrate.ts, prefix-check.ts): the batches and contexts they run at. */
export const CALIBRATION_EFFORT: ProfileEffort = {
  batches: [1, 2, 4, 8, 16, 32],
  contexts: [32, 64, 128, 256, 512],
  attentionBatch: 32,
  reps: 3,
  overheadBatches: [1, 16],
  overheadSteps: 12,
  overheadRounds: 1,
  transportBytes: 1 << 20,
  stallSeconds: 0.6,
};

export const FULL_EFFORT: ProfileEffort = {
  batches: [1, 2, 4, 8, 16, 24, 32, 48],
  contexts: [32, 64, 128, 256, 512, 1024],
  attentionBatch: 32,
  reps: 5,
  overheadBatches: [1, 8, 16],
  overheadSteps: 24,
  overheadRounds: 3,
  transportBytes: 1 << 20,
  stallSeconds: 1,
};

export const QUICK_EFFORT: ProfileEffort = {
  batches: [1, 4, 16],
  contexts: [64, 256],
  attentionBatch: 16,
  reps: 3,
  overheadBatches: [1, 8],
  overheadSteps: 10,
  overheadRounds: 1,
  transportBytes: 1 << 18,
  stallSeconds: 0.2,
};

/** Everything measured, kept beside the profile in the JSON for inspection. */
export interface ProfileDetails {
  readonly shape: CalibrationShape;
  readonly dtype: DType;
  readonly kvDtype: DType;
  readonly cores: number;
  readonly loadAverage: number[];
  readonly gemm: GemmSweep;
  readonly gemmSplit: GemmSweep;
  readonly attention: AttentionSweep;
  readonly attentionSplit: AttentionSweep;
  readonly overheads: EngineOverheads;
  readonly splitOverheads: EngineOverheads;
  readonly transportBandwidth: number;
  readonly messageLatencyS: number;
  readonly kvHandoff: KvHandoffCost;
  readonly stall: readonly StallSample[];
  readonly prefillChunk: { tokens: number; threads: number; seconds: number };
}

/** A sweep as the profile carries it: the roofline fit and the measured pass rates it was fit to. */
function gemmFit(g: GemmSweep): GemmFit {
  return {
    peakFlops: g.peakFlops,
    halfBatch: g.halfBatch,
    points: g.points.map((p) => ({ batch: p.batch, flops: p.gflops * 1e9 })),
  };
}

/** Tokens of the prompt chunk the prefill rate is measured on (the engines' default step budget). */
const PREFILL_CHUNK = 512;
/** Batch of the host-stall loop: a mid-sized decode step of the calibration workloads. */
const STALL_BATCH = 8;

/**
 * Measures this machine's device profile on the shapes of calibration model `shape`: full-machine
 * rates (colocated) and the rates of the model side and one attention worker when they split the
 * cores (disaggregated on one host), plus the engine's overheads from its skeleton model.
 */
export async function measureProfile(
  backend: KernelBackend,
  cacheRoot: string,
  shape: "bench" | "quick",
  dtype: DType,
  effort: ProfileEffort,
  threads = availableParallelism(),
  log: (line: string) => void = () => {},
  /** Other models whose widths the prefill rate and the model side's GEMMs are also measured on (profile.modelShapes). */
  prefillModels: readonly { readonly model: LoadedModel; readonly sim: SimModel }[] = [],
): Promise<{ profile: DeviceProfile; details: ProfileDetails }> {
  const cores = threads;
  const modelThreads = Math.max(1, availableParallelism() - 1);
  const loadAverage = loadavg();
  const model = await loadModel(ensureCalibrationModel(cacheRoot, shape, dtype));
  const skeleton = await loadModel(ensureCalibrationModel(cacheRoot, `${shape}-skeleton`, dtype));
  const c = model.config;
  const kvDtype: DType = defaultKvDtype(model); // the cache the engine keeps by default
  log(`GEMM sweep (${dtype}, ${cores} threads, then ${modelThreads}) ...`);
  const evict = cacheEvictor(backend);
  // Every sweep reads its weights from DRAM (evict). The colocated engine's products run with each
  // layer's attention between them (at the sweep's middle context, its batch's sequences); the
  // split's model side runs nothing else on its cores.
  const context = effort.contexts[effort.contexts.length >> 1]!;
  const maxBatch = Math.max(...effort.batches);
  const between = (m: LoadedModel) =>
    decodeAttentionBetween(backend, m.config, defaultKvDtype(m), maxBatch, context);
  const gemm = measureGemm(backend, c, dtype, cores, effort.batches, effort.reps, {
    between: between(model),
    evict,
  });
  const gemmSplit = measureGemm(backend, c, dtype, modelThreads, effort.batches, effort.reps, { evict });
  log("decode attention sweep ...");
  const attention = measureAttention(
    backend,
    c,
    kvDtype,
    cores,
    effort.attentionBatch,
    effort.contexts,
    effort.reps,
    evict,
  );
  const attentionSplit = measureAttention(
    backend,
    c,
    kvDtype,
    1,
    effort.attentionBatch,
    effort.contexts,
    effort.reps,
    evict,
  );
  log("engine overheads (skeleton model, colocated and with one attention worker) ...");
  const overheads = await measureEngineOverheads(
    skeleton,
    backend,
    { colocated: cores, disaggregated: modelThreads },
    { batches: effort.overheadBatches, steps: effort.overheadSteps, rounds: effort.overheadRounds },
  );
  // The same overheads with the model side's threads: a PD decode instance or a model worker runs
  // with fewer threads than the whole machine, and a pool of fewer threads costs less to wake.
  const splitOverheads = await measureEngineOverheads(
    skeleton,
    backend,
    { colocated: modelThreads, disaggregated: modelThreads },
    { batches: effort.overheadBatches, steps: effort.overheadSteps, rounds: effort.overheadRounds },
  );
  const link = await measureShmLink(effort.transportBytes, effort.reps * 4);
  // The prefill instance's KV handoff, at the first PD model's KV width (else this model's).
  const hc = prefillModels[0]?.model.config ?? c;
  log(`KV handoff of a ${PREFILL_CHUNK}-token chunk (${hc.numKvHeads * hc.headDim} floats per token) ...`);
  const kvHandoff = await measureKvHandoff(
    hc.numKvHeads * hc.headDim,
    hc.numLayers,
    PREFILL_CHUNK,
    effort.reps * 2,
  );
  log(
    `host stall: the decode-shaped matrix pass back to back, the median of ${STALL_WINDOWS} windows of ${effort.stallSeconds} s (${cores} threads, then ${modelThreads}) ...`,
  );
  const stallThreads = [...new Set([cores, modelThreads])];
  const stall = stallThreads.map((t) =>
    measureStallWindows(backend, c, dtype, t, STALL_BATCH, effort.stallSeconds),
  );
  log(`prefill of a ${PREFILL_CHUNK}-token chunk (1 to ${cores} threads) ...`);
  // A whole engine step of one prompt chunk: GEMMs, causal attention and the step's own costs, as a
  // FLOP rate the replica of our engine applies to prompt chunks of any model; at the model side's
  // thread count, and at every core's (two threads prefill at less than twice one's rate).
  const chunk = Math.min(PREFILL_CHUNK, c.maxPositionEmbeddings - 1);
  const timings = await measurePrefillChunk(model, backend, chunk, cores, cores, effort.reps);
  const sm = modelFromHfConfig(calibrationConfig(shape, dtype), "calibration config");
  const chunkFlops = 2 * matmulParams(sm) * chunk + 2 * sm.layers * queryDim(sm) * chunk * chunk;
  const prefillAt = async (threads: number) => {
    log(`prefill of a chunk after a cached context (${threads} threads) ...`);
    const contextBandwidth = await measureContextReads(model, backend, threads, cores, {
      context: Math.min(512, c.maxPositionEmbeddings - 256),
      chunk: 128,
      reps: effort.reps,
      kvBytesPerToken: kvBytesPerToken(sm),
    });
    const seconds = timings.find((t) => t.threads === threads)!.seconds;
    return { threads, flops: chunkFlops / seconds, chunkTokens: chunk, contextBandwidth };
  };
  const prefill = await prefillAt(modelThreads);
  const prefillWhole = cores !== modelThreads ? await prefillAt(cores) : undefined;
  const modelShapes = [];
  for (const { model: m, sim } of prefillModels) {
    const mc = m.config;
    const n = Math.min(PREFILL_CHUNK, mc.maxPositionEmbeddings - 1);
    log(`prefill of a ${n}-token chunk, ${mc.hiddenSize} hidden / ${mc.intermediateSize} intermediate ...`);
    const t = (await measurePrefillChunk(m, backend, n, modelThreads, cores, effort.reps)).find(
      (x) => x.threads === modelThreads,
    )!;
    // A PD decode instance runs its own rows' attention between its products, as colocated.
    const g = measureGemm(backend, mc, dtype, modelThreads, effort.batches, effort.reps, {
      between: between(m),
      evict,
    });
    modelShapes.push({
      hidden: mc.hiddenSize,
      intermediate: mc.intermediateSize,
      threads: modelThreads,
      prefillFlops: (2 * matmulParams(sim) * n + 2 * sim.layers * queryDim(sim) * n * n) / t.seconds,
      prefillChunkTokens: n,
      gemm: gemmFit(g),
      weightBandwidth: g.weightBandwidth,
    });
  }
  backend.setThreads(cores);
  const profile: DeviceProfile = {
    version: 1,
    name: `this-machine-${availableParallelism()}core`,
    measuredAt: new Date().toISOString().slice(0, 10),
    memoryBytes: totalmem(),
    threads: cores,
    gemm: gemmFit(gemm),
    weightBandwidth: gemm.weightBandwidth,
    attentionBandwidth: attention.bandwidth,
    attentionSeqS: attention.seqS,
    layerOverheadS: overheads.layerOverheadS,
    tokenOverheadS: overheads.tokenOverheadS,
    transport: {
      bandwidth: link.bandwidth,
      latencyS: overheads.transportLatencyS,
      messageLatencyS: link.messageLatencyS,
      kvHandoff: { layerS: kvHandoff.layerS, bytesPerS: kvHandoff.bytesPerS },
    },
    stall: stall.map((s) => ({ threads: s.threads, factor: s.factor })),
    prefill,
    ...(prefillWhole ? { prefillWhole } : {}),
    modelShapes,
    split: {
      modelThreads,
      attentionThreads: 1,
      gemm: gemmFit(gemmSplit),
      weightBandwidth: gemmSplit.weightBandwidth,
      attentionBandwidth: attentionSplit.bandwidth,
      attentionSeqS: attentionSplit.seqS,
      layerOverheadS: splitOverheads.layerOverheadS,
      tokenOverheadS: splitOverheads.tokenOverheadS,
    },
  };
  return {
    profile,
    details: {
      shape,
      dtype,
      kvDtype,
      cores,
      loadAverage,
      gemm,
      gemmSplit,
      attention,
      attentionSplit,
      overheads,
      splitOverheads,
      transportBandwidth: link.bandwidth,
      messageLatencyS: link.messageLatencyS,
      kvHandoff,
      stall,
      prefillChunk: {
        tokens: chunk,
        threads: modelThreads,
        seconds: timings.find((t) => t.threads === modelThreads)!.seconds,
      },
    },
  };
}
