/**
 * Every placement the runtime has, as the calibration measures and predicts it: colocated,
 * attention workers without and with pipelining (decode phase of the scaled Azure-Conv workload),
 * PD and Adrenaline (the PD benchmark's trace replay, bench/pd). Each is predicted by
 * sim/predict-engine.ts from the same device profile.
 */
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import type { KernelBackend } from "../../src/kernels/backend.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine, buildEngine, buildPdEngine } from "../../src/placement/build.js";
import type { CoreOptions } from "../../src/placement/options.js";
import { type EnginePlacement, predictEngineRun } from "../../src/sim/predict-engine.js";
import type { DeviceProfile } from "../../src/sim/profile.js";
import type { SimModel } from "../../src/sim/types.js";
import { ensureBenchModel } from "../disagg/bench-model.js";
import { predictPd } from "../pd/pd-predict.js";
import { replay } from "../pd/pd-replay.js";
import { PD_SHAPE, PD_SIZES, pdTraceSlice, type TraceRequest } from "../pd/pd-setup.js";
import { type CalibrationRequest, measureDecode } from "./decode-run.js";

export type PlacementName = "colocated" | "workers-depth1" | "workers-depth2" | "pd" | "adrenaline";
export const PLACEMENTS: readonly PlacementName[] = [
  "colocated",
  "workers-depth1",
  "workers-depth2",
  "pd",
  "adrenaline",
];

/** One measured run, in the terms every placement shares. */
export interface Measured {
  readonly tokS: number;
  readonly ttftS?: number;
  readonly tpotS?: number;
  readonly preemptions?: number;
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
  const options: CoreOptions = { maxRunning: d.workload.length, maxTokensPerStep: 1024 };
  const modelThreads = Math.max(1, d.cores - 1);
  let placement: EnginePlacement;
  let close = async () => {};
  let core: Awaited<ReturnType<typeof buildEngine>>;
  if (name === "colocated") {
    d.backend.setThreads(d.colocatedThreads);
    core = buildColocatedEngine(d.model, d.backend, { ...options, pipelineDepth: 1 });
    placement = { kind: "colocated", threads: d.colocatedThreads };
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
      return { tokS: p.throughputTokS };
    },
  };
}

export const CORES = availableParallelism();
