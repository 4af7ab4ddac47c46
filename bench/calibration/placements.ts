/**
 * Every placement the runtime has, as the calibration measures and predicts it: colocated,
 * attention workers without and with pipelining (decode phase of the scaled Azure-Conv workload),
 * PD and Adrenaline (the PD benchmark's trace replay, bench/pd). Each is predicted by
 * sim/predict-engine.ts from the same device profile.
 */
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { median } from "../../src/bench/stats.js";
import type { KernelBackend } from "../../src/kernels/backend.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine, buildEngine, buildPdEngine } from "../../src/placement/build.js";
import type { CoreOptions } from "../../src/placement/options.js";
import { type EnginePlacement, placementCost, predictEngineRun } from "../../src/sim/predict-engine.js";
import type { DeviceProfile } from "../../src/sim/profile.js";
import type { SimModel } from "../../src/sim/types.js";
import { ensureBenchModel } from "../disagg/bench-model.js";
import { predictPd } from "../pd/pd-predict.js";
import { replay } from "../pd/pd-replay.js";
import { PD_SHAPE, PD_SIZES, pdTraceSlice, type TraceRequest } from "../pd/pd-setup.js";
import { type CalibrationRequest, type DecodeStep, measureDecode } from "./decode-run.js";

export type PlacementName =
  | "colocated"
  | "workers-depth1"
  | "workers-depth2"
  | "model-workers"
  | "pd"
  | "adrenaline";
export const PLACEMENTS: readonly PlacementName[] = [
  "colocated",
  "workers-depth1",
  "workers-depth2",
  "model-workers",
  "pd",
  "adrenaline",
];
/**
 * Model worker processes of the "model-workers" placement: 2 at depth 3 (Lamina's rotation) where
 * the host has a core for each besides the attention worker and the front end, else 1 at depth 2.
 */
export const MODEL_WORKER_REPLICAS = availableParallelism() >= 4 ? 2 : 1;

/** One measured run, in the terms every placement shares. */
export interface Measured {
  readonly tokS: number;
  readonly ttftS?: number;
  readonly tpotS?: number;
  readonly preemptions?: number;
  /**
   * Depth-1 decode placements: every measured pure-decode step against the prediction of that
   * same step (its sequences and context): the median of measured / predicted over steps (the
   * model's error on a typical step) and the whole run's sum over sum (that error and the steps
   * the host stalled: their quotient is what the run lost to stalls).
   */
  readonly stepCheck?: { readonly medianRatio: number; readonly totalRatio: number };
}

/** What a placement needs to be measured now and predicted later from any profile. */
export interface PlacementRun {
  readonly measured: Measured;
  predict(profile: DeviceProfile): Measured;
}

/** The decode-phase workload (colocated, attention workers): the Lamina calibration's. */
export interface DecodeContext {
  readonly backend: KernelBackend;
  readonly model: LoadedModel;
  /** Where the model is (model workers load it themselves). */
  readonly modelDir: string;
  readonly simModel: SimModel;
  readonly workload: readonly CalibrationRequest[];
  readonly cores: number;
  readonly colocatedThreads: number;
  /** KV blocks of the engine's default cache (room for the whole workload). */
  readonly kvBlocks: number;
}

/** The trace replay of PD and Adrenaline (bench/pd's setup). */
export interface PdContext {
  readonly modelDir: string;
  readonly model: LoadedModel;
  readonly trace: readonly TraceRequest[];
}

export async function pdContext(requests: number, rateScale: number): Promise<PdContext> {
  const modelDir = ensureBenchModel(path.join(tmpdir(), "lamina-bench-models"), PD_SHAPE);
  return { modelDir, model: await loadModel(modelDir), trace: pdTraceSlice(requests, rateScale) };
}

export async function runPlacement(
  name: PlacementName,
  d: DecodeContext,
  pd: PdContext,
): Promise<PlacementRun> {
  if (name === "pd" || name === "adrenaline") return runPd(name, pd);
  return runDecode(name, d);
}

async function runPd(mode: "pd" | "adrenaline", c: PdContext): Promise<PlacementRun> {
  const backend = loadKernelBackend({ threads: 1 });
  const { core, attention } = await buildPdEngine(c.model, backend, { ...PD_SIZES, model: c.modelDir, mode });
  const r = await replay(mode, core, attention, [...c.trace]).finally(() => attention.close());
  return {
    measured: { tokS: r.throughput, ttftS: r.ttftMean, tpotS: r.tpotMean, preemptions: r.preemptions },
    predict: (profile) => {
      const p = predictPd(profile, c.modelDir, c.trace, mode);
      return { tokS: p.throughputTokS, ttftS: p.ttftMeanS, tpotS: p.tpotMeanS, preemptions: p.preemptions };
    },
  };
}

async function runDecode(
  name: Exclude<PlacementName, "pd" | "adrenaline">,
  d: DecodeContext,
): Promise<PlacementRun> {
  // The simulator models one token a step: no speculative decoding.
  const options: CoreOptions = {
    maxRunning: d.workload.length,
    maxTokensPerStep: 1024,
    speculativeTokens: 0,
  };
  const modelThreads = Math.max(1, d.cores - 1);
  let placement: EnginePlacement;
  let close = async () => {};
  let core: Awaited<ReturnType<typeof buildEngine>>;
  if (name === "colocated") {
    d.backend.setThreads(d.colocatedThreads);
    core = buildColocatedEngine(d.model, d.backend, { ...options, pipelineDepth: 1 });
    placement = { kind: "colocated", threads: d.colocatedThreads };
  } else if (name === "model-workers") {
    // The model side in model worker processes of 1 thread each, this process the front end.
    const replicas = MODEL_WORKER_REPLICAS;
    core = await buildEngine(d.model, d.backend, {
      ...options,
      model: d.modelDir,
      modelWorkers: replicas,
      modelWorkerThreads: 1,
      attentionWorkers: 1,
      transport: "shm",
      pipelineDepth: replicas + 1,
    });
    const built = core;
    close = async () => {
      await built.executor.close?.();
      await built.attention.close();
    };
    placement = {
      kind: "attention-workers",
      workers: 1,
      pipelineDepth: replicas + 1,
      modelThreads: 1,
      attentionThreads: 1,
      modelWorkers: replicas,
    };
  } else {
    const depth = name === "workers-depth1" ? 1 : 2;
    d.backend.setThreads(modelThreads);
    core = await buildEngine(d.model, d.backend, {
      ...options,
      attentionWorkers: 1,
      transport: "shm",
      pipelineDepth: depth,
    });
    const attention = core.attention;
    close = () => attention.close();
    placement = {
      kind: "attention-workers",
      workers: 1,
      pipelineDepth: depth,
      modelThreads,
      attentionThreads: 1,
    };
  }
  // Once untimed first: a fresh engine's first pass pays page faults on its new KV cache.
  const m = await measureDecode(core, d.workload, `${name} (warm-up)`)
    .then(() => measureDecode(core, d.workload, name))
    .finally(close);
  const t = m.decodeTrace;
  const requests = Array.from(t.prompt, (p, i) => ({
    arrival: 0,
    prompt: p,
    output: t.output[i]!,
    prefilled: true,
  }));
  return {
    measured: { tokS: m.tokensPerS },
    predict: (profile) => {
      const p = predictEngineRun(
        profile,
        d.simModel,
        requests,
        {
          maxRunning: options.maxRunning!,
          maxTokensPerStep: options.maxTokensPerStep!,
          kvBlocks: d.kvBlocks,
          blockSize: 16,
          maxContext: d.model.config.maxPositionEmbeddings,
        },
        placement,
      );
      const depthOne = placement.kind === "colocated" || placement.pipelineDepth === 1;
      return depthOne
        ? { tokS: p.throughputTokS, stepCheck: stepCheck(m.steps, profile, d.simModel, placement) }
        : { tokS: p.throughputTokS };
    },
  };
}

export const CORES = availableParallelism();

/** Measured pure-decode steps against the placement's step model on the same batches. */
function stepCheck(
  steps: readonly DecodeStep[],
  profile: DeviceProfile,
  model: SimModel,
  placement: EnginePlacement,
): { medianRatio: number; totalRatio: number } {
  const cost = placementCost(profile, model, placement);
  let measured = 0;
  let predicted = 0;
  const ratios = steps.map((s) => {
    const p = cost.cycle([
      {
        seqs: s.seqs,
        decodeRows: s.seqs,
        ownDecodeRows: s.seqs,
        ownDecodeCtx: s.ctx,
        ownPrefillTokens: 0,
        ownPrefillWork: 0,
        remote: [],
      },
    ]);
    measured += s.seconds;
    predicted += p;
    return s.seconds / p;
  });
  return { medianRatio: median(ratios), totalRatio: measured / predicted };
}
