import { LocalAttentionService } from "../attention/local-service.js";
import type { AttentionService } from "../attention/service.js";
import { EngineCore } from "../engine/engine-core.js";
import { sliceModel } from "../graph/converter.js";
import { buildLlamaGraph } from "../graph/llama-graph.js";
import type { KernelBackend } from "../kernels/backend.js";
import type { LoadedModel } from "../model/types.js";
import type { HybridAttentionService } from "../pd/hybrid-attention.js";
import { SliceExecutor } from "../runtime/executor.js";
import type { ModelExecutor } from "../runtime/model-executor.js";
import { connectAttentionWorkers } from "./attention-workers.js";
import { buildModelWorkerPlacement } from "./model-workers.js";
import type { EngineOptions } from "./options.js";
import { buildPdPlacement, type PrefillOpener } from "./pd.js";
import { type EngineSizes, resolveSizes } from "./sizes.js";
import { modelWorkerCount, type PlacementKind, validatePlacement } from "./validate.js";

export interface BuildContext {
  readonly log?: (line: string) => void;
  /** How to reach prefill instances instead of spawning them (tests serve them in-process). */
  readonly prefillOpener?: PrefillOpener;
}

/** What a placement contributes to the engine: who runs the slices, and who runs attention. */
export interface Assembled {
  readonly executor: ModelExecutor;
  readonly attention: AttentionService;
}

/** Micro-batches in flight: asked for, else 2 where attention runs elsewhere (Lamina's ping-pong). */
export function pipelineDepth(kind: PlacementKind, o: EngineOptions): number {
  // With model workers, Lamina's n = a + 1: every model worker busy while one batch is in attention.
  const a = modelWorkerCount(o);
  if (a !== undefined) return o.pipelineDepth ?? a + 1;
  return o.pipelineDepth ?? (kind === "attention-workers" ? 2 : 1);
}

/**
 * The one place engines are assembled: validates the placement flags, builds the executor and the
 * attention service the placement asks for (colocated, attention workers, PD, Adrenaline) and
 * the `EngineCore` over them.
 */
export async function buildEngine(
  model: LoadedModel,
  backend: KernelBackend,
  options: EngineOptions = {},
  context: BuildContext = {},
): Promise<EngineCore> {
  const kind = validatePlacement(options);
  const log = context.log ?? (() => {});
  const sizes = resolveSizes(model, options);
  const depth = pipelineDepth(kind, options);
  let parts: Assembled;
  if (kind === "attention-workers" && modelWorkerCount(options) !== undefined) {
    parts = await buildModelWorkerPlacement(model, sizes, options, depth, log);
  } else if (kind === "colocated" || kind === "attention-workers") {
    const attention =
      kind === "colocated"
        ? new LocalAttentionService(backend, sizes.geometry, sizes.localBlocks)
        : await connectAttentionWorkers(sizes, options, depth, log);
    parts = { executor: sliceExecutor(model, backend, sizes, depth), attention };
  } else {
    const sliced = sliceModel(buildLlamaGraph(model.config));
    const c = {
      model,
      backend,
      sliced,
      sizes,
      options,
      microBatches: depth,
      log,
      opener: context.prefillOpener,
    };
    parts = await buildPdPlacement(c);
  }
  return engineCore(model, sizes, depth, parts, backend);
}

/**
 * An engine built synchronously: colocated, or over an attention service connected elsewhere
 * (start-up measurements, tests and benchmarks that serve workers in-process).
 */
export function buildColocatedEngine(
  model: LoadedModel,
  backend: KernelBackend,
  options: EngineOptions = {},
  attention?: AttentionService,
): EngineCore {
  const kind = validatePlacement(options);
  if (kind !== "colocated") throw new Error(`buildColocatedEngine: the options ask for ${kind}`);
  const sizes = resolveSizes(model, options);
  const depth = pipelineDepth(attention ? "attention-workers" : kind, options);
  const service = attention ?? new LocalAttentionService(backend, sizes.geometry, sizes.localBlocks);
  return engineCore(
    model,
    sizes,
    depth,
    { executor: sliceExecutor(model, backend, sizes, depth), attention: service },
    backend,
  );
}

/** A PD or Adrenaline engine with its hybrid attention service (tests and benchmarks inspect it). */
export async function buildPdEngine(
  model: LoadedModel,
  backend: KernelBackend,
  options: EngineOptions,
  context: BuildContext = {},
): Promise<{ core: EngineCore; attention: HybridAttentionService }> {
  const kind = validatePlacement(options);
  if (kind !== "pd" && kind !== "adrenaline") throw new Error(`buildPdEngine: the options ask for ${kind}`);
  const core = await buildEngine(model, backend, options, context);
  return { core, attention: core.attention as HybridAttentionService };
}

function sliceExecutor(model: LoadedModel, backend: KernelBackend, sizes: EngineSizes, depth: number) {
  const sliced = sliceModel(buildLlamaGraph(model.config));
  return new SliceExecutor(sliced, model.weights, backend, model.config, {
    maxTokens: sizes.maxTokensPerStep,
    maxLogitRows: sizes.maxLogitRows,
    microBatches: depth,
  });
}

function engineCore(
  model: LoadedModel,
  sizes: EngineSizes,
  depth: number,
  parts: Assembled,
  backend: KernelBackend,
): EngineCore {
  const eos = new Set<number>([
    ...(model.generation.eosTokenIds ?? model.config.eosTokenIds),
    ...model.tokenizer.eosTokenIds,
  ]);
  return new EngineCore(parts.executor, parts.attention, model.tokenizer, {
    maxRunning: sizes.maxRunning,
    maxWaiting: sizes.maxWaiting,
    maxTokensPerStep: sizes.maxTokensPerStep,
    maxContext: sizes.maxContext,
    outputReserve: sizes.outputReserve,
    prefixCaching: sizes.prefixCaching,
    ...(sizes.speculation ? { speculation: sizes.speculation } : {}),
    eosTokenIds: [...eos],
    vocabSize: model.config.vocabSize,
    pipelineDepth: depth,
    samplingKernels: backend,
  });
}
