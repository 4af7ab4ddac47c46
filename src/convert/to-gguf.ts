import { type ModelConfig, type MoeConfig, type RopeScaling, yarnMscale } from "../model/config.js";
import type { GemmaGgufArch } from "../model/gguf-gemma.js";
import { interleavesQk } from "../model/gguf-names.js";
import type { LoadedModel } from "../model/types.js";
import { ernieLayerPattern, type GgufArch, ggufArchitecture } from "./gguf-architecture.js";
import { type GgufQuantize, LlamaFileType } from "./gguf-format.js";
import { gemmaMetadata } from "./gguf-gemma.js";
import { planTensors } from "./gguf-tensors.js";
import { extractVocab, vocabMetadata } from "./gguf-vocab.js";
import { type GgufKv, type GgufWriteSummary, gguf, writeGguf } from "./gguf-writer.js";

export interface ToGgufOptions {
  /** A Hugging Face tokenizer directory used instead of the model's own (as `--tokenizer` loaded it). */
  readonly tokenizerDir?: string;
  /** Data alignment (general.alignment); default 32. */
  readonly alignment?: number;
  /** Called before each tensor is written. */
  readonly onTensor?: (index: number, count: number, name: string) => void;
  /** Quantize the matrices: q8_0, q4_0, q4_k_m, q5_k_m or iq4_xs (llama.cpp's mixes; see quantTarget). */
  readonly quantize?: GgufQuantize;
}

export interface ToGgufSummary extends GgufWriteSummary {
  readonly architecture: string;
  readonly fileType: keyof typeof LlamaFileType;
  readonly tokenizerModel: string;
}

/**
 * Writes a loaded model as a GGUF file llama.cpp can run: its architecture's metadata, tensors
 * under llama.cpp's names in their stored precision (q/k rows back in Meta's interleaved order
 * for the "llama" architecture, Gemma's norms as scales rather than offsets from 1), and the
 * tokenizer.
 */
export function modelToGguf(model: LoadedModel, file: string, opts: ToGgufOptions = {}): ToGgufSummary {
  const c = model.config;
  const arch = ggufArchitecture(c, model.source.label);
  const fileType = opts.quantize ?? matrixPrecision(model);
  const vocab = extractVocab(model, opts.tokenizerDir);
  const metadata: GgufKv[] = [
    { key: "general.architecture", value: gguf.str(arch) },
    ...safeName(model.source.label, vocab.tokens),
    { key: "general.file_type", value: gguf.u32(LlamaFileType[fileType]) },
    ...architectureMetadata(arch, c),
    ...(isGemma(arch) ? gemmaMetadata(arch, c) : []),
    ...(arch === "phi3" ? phi3Metadata(c) : []),
    ...(arch === "granite" || arch === "granitemoe" ? graniteMetadata(arch, c) : []),
    ...(arch === "olmo2" ? olmo3Metadata(c) : []),
    ...(arch === "gpt-oss"
      ? [{ key: "gpt-oss.attention.sliding_window", value: gguf.u32(c.slidingWindow!) }]
      : []),
    ...vocabMetadata(model, vocab),
  ];
  const tensors = planTensors(c, model.weights, {
    interleaveQk: interleavesQk(arch),
    normPlusOne: c.normPlusOne === true,
    ...(opts.quantize ? { quantize: opts.quantize } : {}),
  });
  const summary = writeGguf(file, metadata, tensors, {
    ...(opts.alignment !== undefined ? { alignment: opts.alignment } : {}),
    ...(opts.onTensor ? { onTensor: opts.onTensor } : {}),
  });
  return { ...summary, architecture: arch, fileType, tokenizerModel: vocab.model };
}

function isGemma(arch: GgufArch): arch is GemmaGgufArch {
  return arch === "gemma" || arch === "gemma2" || arch === "gemma3";
}

/**
 * Phi-3's keys as llama.cpp's converter writes them: the window (0: none) and, with LongRoPE, the
 * original context length and the attention factor (the factor tables are tensors).
 */
function phi3Metadata(c: ModelConfig): GgufKv[] {
  const kv: GgufKv[] = [{ key: "phi3.attention.sliding_window", value: gguf.u32(c.slidingWindow ?? 0) }];
  const s = c.ropeScaling;
  if (s?.type === "longrope") {
    kv.push({
      key: "phi3.rope.scaling.original_context_length",
      value: gguf.u32(s.originalMaxPositionEmbeddings),
    });
    kv.push({ key: "phi3.rope.scaling.attn_factor", value: gguf.f32(s.attentionFactor) });
  }
  return kv;
}

/**
 * Granite's multipliers under llama.cpp's keys: the logit scale always (its granite requires it),
 * the attention scale where the model has one (else llama.cpp uses 1/√head_dim, as the engine does),
 * the embedding and residual scales where they are not 1.
 */
function graniteMetadata(arch: "granite" | "granitemoe", c: ModelConfig): GgufKv[] {
  const kv: GgufKv[] = [{ key: `${arch}.logit_scale`, value: gguf.f32(c.logitsDivisor ?? 1) }];
  if (c.attentionScale !== undefined)
    kv.push({ key: `${arch}.attention.scale`, value: gguf.f32(c.attentionScale) });
  if (c.embedMultiplier !== undefined)
    kv.push({ key: `${arch}.embedding_scale`, value: gguf.f32(c.embedMultiplier) });
  if (c.residualMultiplier !== undefined)
    kv.push({ key: `${arch}.residual_scale`, value: gguf.f32(c.residualMultiplier) });
  return kv;
}

/**
 * llama.cpp gives tokens named "<s>", "</s>", "<unk>" and "<|endoftext|>" special attributes when
 * general.name contains "phi3" or "phi-3", and fails to load (std::map::at) if any is missing from
 * the vocabulary: such a name is left out then (it is informational only).
 */
function safeName(label: string, tokens: readonly string[]): GgufKv[] {
  if (!/phi-?3/i.test(label)) return [{ key: "general.name", value: gguf.str(label) }];
  const have = new Set(tokens);
  const all = ["<s>", "</s>", "<unk>", "<|endoftext|>"].every((t) => have.has(t));
  return all ? [{ key: "general.name", value: gguf.str(label) }] : [];
}

/** The one precision of the model's matrices (general.file_type); mixed precisions are refused. */
function matrixPrecision(model: LoadedModel): keyof typeof LlamaFileType {
  const seen = new Set<keyof typeof LlamaFileType>();
  for (const t of model.weights.values()) {
    if (t.shape.length < 2) continue;
    if (t.dtype === "f32" || t.dtype === "f16" || t.dtype === "bf16") seen.add(t.dtype);
    else {
      throw new Error(
        `GGUF export of ${model.source.label}: ${t.name} is stored as ${t.dtype}; ` +
          "re-export a quantized model with --quantize",
      );
    }
  }
  if (seen.size !== 1) {
    throw new Error(
      `GGUF export of ${model.source.label}: matrices mix precisions (${[...seen].join(", ")}); ` +
        "convert them to one precision first",
    );
  }
  return [...seen][0]!;
}

function architectureMetadata(arch: string, c: ModelConfig): GgufKv[] {
  const k = (name: string) => `${arch}.${name}`;
  const kv: GgufKv[] = [
    { key: k("vocab_size"), value: gguf.u32(c.vocabSize) },
    { key: k("context_length"), value: gguf.u32(c.maxPositionEmbeddings) },
    { key: k("embedding_length"), value: gguf.u32(c.hiddenSize) },
    { key: k("block_count"), value: gguf.u32(c.numLayers) },
    { key: k("feed_forward_length"), value: gguf.u32(c.intermediateSize) },
    { key: k("attention.head_count"), value: gguf.u32(c.numHeads) },
    { key: k("attention.head_count_kv"), value: gguf.u32(c.numKvHeads) },
    // Stated always: llama.cpp otherwise assumes hidden / heads, which an explicit head_dim may not be.
    { key: k("attention.key_length"), value: gguf.u32(c.headDim) },
    { key: k("attention.value_length"), value: gguf.u32(c.headDim) },
    { key: k("attention.layer_norm_rms_epsilon"), value: gguf.f32(c.rmsNormEps) },
    { key: k("rope.freq_base"), value: gguf.f32(c.ropeTheta) },
    // Partial rotary embeddings (Phi-4-mini's) rotate fewer dims than a head has.
    { key: k("rope.dimension_count"), value: gguf.u32(c.rotaryDim ?? c.headDim) },
  ];
  if (c.moe) {
    // Mixtral: every layer a mixture (feed_forward_length is each expert's width).
    kv.push({ key: k("expert_count"), value: gguf.u32(c.moe.numExperts) });
    kv.push({ key: k("expert_used_count"), value: gguf.u32(c.moe.topK) });
    if (
      arch === "qwen3moe" ||
      arch === "ernie4_5-moe" ||
      arch === "gpt-oss" ||
      arch === "qwen2moe" ||
      arch === "glm4moe"
    )
      kv.push({ key: k("expert_feed_forward_length"), value: gguf.u32(c.moe.expertIntermediateSize) });
    if (arch === "glm4moe") kv.push(...glm4MoeMetadata(k, c.moe));
    if (arch === "qwen2moe" && c.moe.sharedExpertSize)
      kv.push({ key: k("expert_shared_feed_forward_length"), value: gguf.u32(c.moe.sharedExpertSize) });
    const pattern = arch === "ernie4_5-moe" ? ernieLayerPattern(c) : null;
    if (pattern) {
      kv.push({ key: k("leading_dense_block_count"), value: gguf.u32(pattern.lead) });
      kv.push({ key: k("interleave_moe_layer_step"), value: gguf.u32(pattern.step) });
      if (c.moe.sharedExpertSize)
        kv.push({ key: k("expert_shared_feed_forward_length"), value: gguf.u32(c.moe.sharedExpertSize) });
    }
  }
  if (arch === "exaone4" && c.slidingWindow !== null)
    kv.push({ key: k("attention.sliding_window"), value: gguf.u32(c.slidingWindow) });
  const s = c.ropeScaling;
  if (s?.type === "linear") {
    kv.push({ key: k("rope.scaling.type"), value: gguf.str("linear") });
    kv.push({ key: k("rope.scaling.factor"), value: gguf.f32(s.factor) });
  }
  if (s?.type === "yarn") kv.push(...yarnMetadata(k, s));
  // Llama 3 scaling travels as the rope_freqs tensor alone: llama.cpp reads any scaling factor key
  // as linear scaling and rejects "llama3" as a scaling type, so neither is written.
  return kv;
}

/** llama.cpp's glm4moe routing keys (the architecture check made the shared width a whole number of experts). */
function glm4MoeMetadata(k: (name: string) => string, moe: MoeConfig): GgufKv[] {
  return [
    { key: k("leading_dense_block_count"), value: gguf.u32(moe.sparseLayers.indexOf(true)) },
    {
      key: k("expert_shared_count"),
      value: gguf.u32((moe.sharedExpertSize ?? 0) / moe.expertIntermediateSize),
    },
    { key: k("expert_weights_scale"), value: gguf.f32(moe.routedScale ?? 1) },
    { key: k("expert_weights_norm"), value: gguf.bool(moe.normalizeTopK) },
    // llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID.
    { key: k("expert_gating_func"), value: gguf.u32(2) },
    { key: k("nextn_predict_layers"), value: gguf.u32(0) },
  ];
}

/**
 * YaRN under llama.cpp's keys: its cos/sin magnitude is mscale(factor) times rope.scaling.attn_factor
 * (measured: a file with attn_factor 2 ran as a magnitude of 2 · mscale), so a model's own attention
 * factor travels as the ratio, written only where it is not 1. Not rope.scaling.yarn_attn_factor,
 * where llama.cpp's own converter puts it: the llama.cpp the tests run ignores that key (a file with
 * 2 there ran as mscale alone). The betas are llama.cpp's defaults (architecture check).
 */
function yarnMetadata(k: (name: string) => string, s: Extract<RopeScaling, { type: "yarn" }>): GgufKv[] {
  const kv: GgufKv[] = [
    { key: k("rope.scaling.type"), value: gguf.str("yarn") },
    { key: k("rope.scaling.factor"), value: gguf.f32(s.factor) },
    { key: k("rope.scaling.original_context_length"), value: gguf.u32(s.originalMaxPositionEmbeddings) },
  ];
  const ratio = s.attentionFactor / yarnMscale(s.factor);
  if (Math.abs(ratio - 1) > 1e-6) kv.push({ key: k("rope.scaling.attn_factor"), value: gguf.f32(ratio) });
  return kv;
}

/**
 * OLMo 3's window under llama.cpp's olmo2 keys: its size (llama.cpp fixes the pattern, every fourth
 * layer full; gguf-architecture.ts refuses others) and the window layers' RoPE base where it is
 * not the model's.
 */
function olmo3Metadata(c: ModelConfig): GgufKv[] {
  if (c.slidingWindow === null) return [];
  const kv: GgufKv[] = [{ key: "olmo2.attention.sliding_window", value: gguf.u32(c.slidingWindow) }];
  if (c.localRopeTheta !== undefined && c.localRopeTheta !== c.ropeTheta)
    kv.push({ key: "olmo2.rope.freq_base_swa", value: gguf.f32(c.localRopeTheta) });
  return kv;
}
