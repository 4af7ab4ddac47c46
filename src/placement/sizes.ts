import type { KvGeometry } from "../attention/kv-attention.js";
import { globalBlocksForBudget } from "../attention/window-blocks.js";
import { DEFAULT_SPECULATION, draftRows, type SpeculationOptions } from "../engine/speculative.js";
import { checkKvBlockSize } from "../kernels/kv-cache.js";
import { type DType, toFloat32 } from "../model/tensor.js";
import type { LoadedModel } from "../model/types.js";
import { attentionNames } from "../model/weight-names.js";
import {
  checkOutputReserve,
  DEFAULT_OUTPUT_RESERVE,
  type OutputReserveOptions,
} from "../util/output-reserve.js";
import type { CoreOptions } from "./options.js";

export const DEFAULT_KV_MEMORY = 1 << 30;
/**
 * Tokens per KV block. Decode attention reads each block's K (then V) rows of a task's heads as one
 * contiguous region, so longer blocks are longer sequential reads: on an AVX-512 EPYC, blocks of 64
 * read the cache 10-25% faster than blocks of 16 with grouped queries and bf16 or int8 KV, and decode
 * at a 4k context ran 5% (in-process) to 12% (one attention worker) faster (docs/BENCHMARKS.md). The
 * cost is a sequence's unused tail, at most 63 tokens.
 */
export const DEFAULT_BLOCK_SIZE = 64;

/**
 * The KV cache in the model's own float type (f32, bf16 or f16), f16 for a model in a block format
 * (as llama.cpp keeps it), from the embedding's stored type, known without the weights. A bf16
 * model's keys and values keep bf16's range (f16 overflows past 65,504), and grouped-query decode
 * attention reads a bf16 cache 1.25-1.3x faster end to end where the CPU has AVX-512-BF16
 * (docs/BENCHMARKS.md, "The KV cache in the model's type").
 */
export function defaultKvDtype(model: LoadedModel): DType {
  const emb = model.weights.get("model.embed_tokens.weight")?.dtype ?? model.embedDtype;
  return emb === "f32" || emb === "bf16" ? emb : "f16";
}

/**
 * Every layer's attention sinks as [layers, heads] logits: the attention side folds them into its
 * results (kv-attention.ts), so whoever configures it needs them, weights or not.
 */
function attentionSinks(model: LoadedModel): Float32Array {
  const c = model.config;
  const out = new Float32Array(c.numLayers * c.numHeads);
  for (let l = 0; l < c.numLayers; l++) {
    const name = attentionNames(l).sinks;
    const t = model.weights.get(name);
    if (!t)
      throw new Error(
        `${c.architecture}: attention sinks ${name} are not loaded (a process that configures attention needs them)`,
      );
    out.set(toFloat32(t), l * c.numHeads);
  }
  return out;
}

/** Resolved sizes shared by the engine and whichever attention service it uses. */
export interface EngineSizes {
  readonly maxContext: number;
  readonly maxRunning: number;
  readonly maxTokensPerStep: number;
  readonly maxWaiting: number;
  readonly geometry: KvGeometry;
  /** KV blocks of an in-process cache whose layers share one block table (attention workers size their own). */
  readonly numBlocks: number;
  /** KV blocks of the colocated service's global pool (its window layers' pool is sized from it). */
  readonly localBlocks: number;
  readonly outputReserve: OutputReserveOptions;
  readonly prefixCaching: boolean;
  /** Speculative decoding's settings, or null when off. */
  readonly speculation: SpeculationOptions | null;
  /** Logit rows of a step: one a sequence, and the drafts' (speculative.ts draftRows). */
  readonly maxLogitRows: number;
}

export function resolveSizes(model: LoadedModel, o: CoreOptions): EngineSizes {
  const c = model.config;
  const maxContext = Math.min(o.maxModelLen ?? c.maxPositionEmbeddings, c.maxPositionEmbeddings);
  const maxRunning = o.maxRunning ?? 64;
  const maxTokensPerStep = Math.max(o.maxTokensPerStep ?? 512, maxRunning);
  const geometry: KvGeometry = {
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    blockSize: o.blockSize ?? DEFAULT_BLOCK_SIZE,
    kvDtype: o.kvDtype ?? defaultKvDtype(model),
    maxContext,
    maxTokens: maxTokensPerStep,
    maxSeqs: maxRunning,
    slidingWindow: c.slidingWindow,
    ...(c.slidingLayers ? { slidingLayers: c.slidingLayers } : {}),
    ...(c.attentionScale !== undefined ? { scale: c.attentionScale } : {}),
    ...(c.attnSoftcap !== undefined ? { softcap: c.attnSoftcap } : {}),
    ...(c.attnSinks ? { sinks: attentionSinks(model) } : {}),
  };
  checkKvBlockSize(geometry.kvDtype, geometry.blockSize);
  const speculation = speculationOptions(model, o);
  const budget = o.kvMemory ?? DEFAULT_KV_MEMORY;
  const numBlocks = o.kvBlocks ?? Math.max(1, globalBlocksForBudget(geometry, budget, false));
  // The colocated cache keeps window layers' KV apart when the model mixes them (window-blocks.ts):
  // the window blocks it frees leave room for more global ones.
  const localBlocks = o.kvBlocks ?? Math.max(1, globalBlocksForBudget(geometry, budget, true));
  return {
    maxContext,
    maxRunning,
    maxTokensPerStep,
    maxWaiting: o.maxWaiting ?? 1024,
    geometry,
    numBlocks,
    localBlocks,
    outputReserve: checkOutputReserve(o.outputReserve ?? DEFAULT_OUTPUT_RESERVE),
    prefixCaching: o.prefixCaching ?? true,
    speculation,
    maxLogitRows: maxRunning + draftRows(speculation, maxRunning),
  };
}

/**
 * Weights a step reads at least for speculative decoding to be on by default. A draft pays where
 * a step's time goes to reading the weights, which its extra rows share; a model smaller than this
 * (the built-in demo's 1 MB) spends a step on fixed costs that extra rows add to. Measured on the
 * demo, 4 sequences decoded 0.83-0.90x as fast with drafts; SmolLM2-135M's shape (270 MB) 1.10-1.59x
 * faster (docs/BENCHMARKS.md, speculative decoding).
 */
export const SPECULATION_MIN_WEIGHT_BYTES = 32 * 2 ** 20;

/** The resolved speculation settings: the defaults where not given, null when 0 draft tokens. */
function speculationOptions(model: LoadedModel, o: CoreOptions): SpeculationOptions | null {
  const fallback = weightBytes(model) >= SPECULATION_MIN_WEIGHT_BYTES ? DEFAULT_SPECULATION.tokens : 0;
  const tokens = o.speculativeTokens ?? fallback;
  if (tokens === 0) return null;
  return { tokens, maxRunning: o.speculativeMaxRunning ?? DEFAULT_SPECULATION.maxRunning };
}

/**
 * Bytes of the model's weights: as loaded, or (a front end that loaded none: its model workers
 * hold them) estimated from its shape at 2 bytes a parameter.
 */
function weightBytes(model: LoadedModel): number {
  let bytes = 0;
  for (const t of model.weights.values()) bytes += t.data.byteLength;
  if (bytes > 0) return bytes;
  const c = model.config;
  const attention = c.hiddenSize * c.headDim * (2 * c.numHeads + 2 * c.numKvHeads);
  return 2 * (c.numLayers * (attention + 3 * c.hiddenSize * c.intermediateSize) + c.vocabSize * c.hiddenSize);
}
