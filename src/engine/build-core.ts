import { kvBytesPerBlock } from "../attention/kv-attention.js";
import { LocalAttentionService } from "../attention/local-service.js";
import type { AttentionService } from "../attention/service.js";
import { sliceModel } from "../graph/converter.js";
import { buildLlamaGraph } from "../graph/llama-graph.js";
import type { KernelBackend } from "../kernels/backend.js";
import type { DType } from "../model/tensor.js";
import type { LoadedModel } from "../model/types.js";
import { SliceExecutor } from "../runtime/executor.js";
import { EngineCore } from "./engine-core.js";

/** Engine sizing and placement knobs, with defaults that work on a small machine. */
export interface CoreOptions {
  readonly maxRunning?: number;
  readonly maxWaiting?: number;
  readonly maxTokensPerStep?: number;
  /** Cap on prompt + output tokens (default: the model's context). */
  readonly maxModelLen?: number;
  /** KV block size in tokens (default 16). */
  readonly blockSize?: number;
  /** KV memory budget in bytes (default 1 GiB), or an exact block count. */
  readonly kvMemory?: number;
  readonly kvBlocks?: number;
  /** KV precision (default: f32 for f32 models, f16 otherwise). */
  readonly kvDtype?: DType;
  /** Micro-batches in flight per step (staggered pipelining; default 1 in-process, 2 with attention workers). */
  readonly pipelineDepth?: number;
}

export const DEFAULT_KV_MEMORY = 1 << 30;

export function defaultKvDtype(model: LoadedModel): DType {
  const emb = model.weights.get("model.embed_tokens.weight");
  return emb && emb.dtype === "f32" ? "f32" : "f16";
}

/** Resolved sizes shared by the engine and whichever attention service it uses. */
export function resolveSizes(model: LoadedModel, o: CoreOptions) {
  const c = model.config;
  const maxContext = Math.min(o.maxModelLen ?? c.maxPositionEmbeddings, c.maxPositionEmbeddings);
  const maxRunning = o.maxRunning ?? 64;
  const maxTokensPerStep = Math.max(o.maxTokensPerStep ?? 512, maxRunning);
  const blockSize = o.blockSize ?? 16;
  const kvDtype = o.kvDtype ?? defaultKvDtype(model);
  const geometry = {
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    blockSize,
    kvDtype,
    maxContext,
    maxTokens: maxTokensPerStep,
    maxSeqs: maxRunning,
    slidingWindow: c.slidingWindow,
  };
  const numBlocks =
    o.kvBlocks ?? Math.max(1, Math.floor((o.kvMemory ?? DEFAULT_KV_MEMORY) / kvBytesPerBlock(geometry)));
  return { maxContext, maxRunning, maxTokensPerStep, maxWaiting: o.maxWaiting ?? 1024, geometry, numBlocks };
}

/**
 * Wires a loaded model into an engine: graph → slices → executor, plus an attention service
 * (in-process unless one is given, e.g. remote attention workers).
 */
export function buildEngineCore(
  model: LoadedModel,
  backend: KernelBackend,
  o: CoreOptions = {},
  attention?: AttentionService,
): EngineCore {
  const sizes = resolveSizes(model, o);
  const sliced = sliceModel(buildLlamaGraph(model.config));
  const executor = new SliceExecutor(sliced, model.weights, backend, model.config, {
    maxTokens: sizes.maxTokensPerStep,
    maxLogitRows: sizes.maxRunning,
  });
  const service = attention ?? new LocalAttentionService(backend, sizes.geometry, sizes.numBlocks);
  const eos = new Set<number>([
    ...(model.generation.eosTokenIds ?? model.config.eosTokenIds),
    ...model.tokenizer.eosTokenIds,
  ]);
  return new EngineCore(executor, service, model.tokenizer, {
    maxRunning: sizes.maxRunning,
    maxWaiting: sizes.maxWaiting,
    maxTokensPerStep: sizes.maxTokensPerStep,
    maxContext: sizes.maxContext,
    eosTokenIds: [...eos],
    vocabSize: model.config.vocabSize,
    pipelineDepth: o.pipelineDepth ?? (attention ? 2 : 1),
  });
}
