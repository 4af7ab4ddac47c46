import {
  type ModelConfig,
  noRopeLayers,
  type RopeScaling,
  ropeLayersEvery,
  yarnMscale,
} from "../model/config.js";
import type { GemmaGgufArch } from "../model/gguf-gemma.js";
import { interleavesQk, SMOLLM3_NO_ROPE_STEP } from "../model/gguf-names.js";
import type { LoadedModel } from "../model/types.js";
import { type GgufQuantize, LlamaFileType } from "./gguf-format.js";
import { gemmaGgufArchitecture, gemmaMetadata } from "./gguf-gemma.js";
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

type GgufArch =
  | "llama"
  | "qwen2"
  | "qwen3"
  | "qwen3moe"
  | "phi3"
  | "granite"
  | "granitemoe"
  | "smollm3"
  | "olmo2"
  | "ernie4_5"
  | GemmaGgufArch;

function isGemma(arch: GgufArch): arch is GemmaGgufArch {
  return arch === "gemma" || arch === "gemma2" || arch === "gemma3";
}

/** llama.cpp's architecture for a config, or a clear error for what it would run differently. */
function ggufArchitecture(c: ModelConfig, label: string): GgufArch {
  // The writer knows llama.cpp's llama (Mistral and Mixtral are stored as llama), qwen2, qwen3,
  // qwen3moe, phi3, gemma, gemma2, gemma3, granite, smollm3, olmo2 and ernie4_5 layouts only.
  const families = [
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "qwen3_moe",
    "phi3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "granite",
    "smollm3",
    "olmo2",
    "ernie4_5",
  ];
  if (!families.includes(c.architecture)) {
    throw new Error(
      `GGUF export of ${label}: the ${c.architecture} family is not supported (${families.join(", ")})`,
    );
  }
  const yarn = c.ropeScaling?.type === "yarn" ? c.ropeScaling : null;
  if (yarn && !yarn.truncate)
    throw new Error(
      `GGUF export of ${label}: YaRN with truncate = false has no equivalent in llama.cpp (it always floors and ceils the ramp's ends)`,
    );
  // Measured against the llama.cpp the tests run: files with yarn_beta_fast 16 and yarn_beta_slow
  // 2 gave the tokens of 32 and 1, its context's defaults, which win over the file's keys.
  if (yarn && (yarn.betaFast !== 32 || yarn.betaSlow !== 1))
    throw new Error(
      `GGUF export of ${label}: YaRN beta_fast ${yarn.betaFast} / beta_slow ${yarn.betaSlow}: llama.cpp runs YaRN with 32 and 1 whatever the file's keys say`,
    );
  if (c.architecture === "gemma" || c.architecture === "gemma2" || c.architecture === "gemma3_text")
    return gemmaGgufArchitecture(c, label);
  if (c.architecture === "qwen3_moe") {
    // llama.cpp's qwen3moe runs every layer as a mixture and renormalises the top-k weights.
    if (!c.moe || c.moe.sparseLayers.some((s) => !s))
      throw new Error(
        `GGUF export of ${label}: a qwen3_moe model with dense layers (mlp_only_layers, decoder_sparse_step) has no equivalent in llama.cpp's qwen3moe`,
      );
    if (!c.moe.normalizeTopK)
      throw new Error(
        `GGUF export of ${label}: llama.cpp's qwen3moe renormalises the top-k expert weights; this model does not (norm_topk_prob false)`,
      );
  }
  if (c.slidingWindow !== null && c.slidingWindow < c.maxPositionEmbeddings) {
    // llama.cpp's phi3 reads a window and then turns it off.
    const where = c.architecture === "phi3" ? "phi3 (which ignores its window)" : "llama architecture";
    throw new Error(
      `GGUF export of ${label}: sliding-window attention (window ${c.slidingWindow} < context ` +
        `${c.maxPositionEmbeddings}) has no equivalent in llama.cpp's ${where}`,
    );
  }
  if (c.architecture === "phi3") return phi3Architecture(c, label);
  if (c.architecture === "olmo2") {
    if (!c.qkNorm || !c.qkNormFull || !c.postNormsOnly || c.attentionBias || c.moe)
      throw new Error(
        `GGUF export of ${label}: llama.cpp's olmo2 wants norms after the blocks only, whole-projection q/k norms, no biases or experts`,
      );
    return "olmo2";
  }
  if (c.architecture === "ernie4_5") {
    // llama.cpp's ernie4_5 is Llama's graph with interleaved q/k rows (written back as the checkpoint had them).
    if (c.attentionBias || c.moe)
      throw new Error(
        `GGUF export of ${label}: llama.cpp's ernie4_5 (dense) wants no q/k/v biases or experts`,
      );
    return "ernie4_5";
  }
  if (c.architecture === "smollm3") {
    // llama.cpp's smollm3 fixes its no-RoPE layers at every fourth; no key states others.
    const fixed = ropeLayersEvery(c.numLayers, SMOLLM3_NO_ROPE_STEP).ropeLayers;
    if (JSON.stringify(c.ropeLayers) !== JSON.stringify(fixed) || c.attentionBias || c.moe)
      throw new Error(
        `GGUF export of ${label}: llama.cpp's smollm3 leaves RoPE out of every fourth layer (3, 7, ...) and has no biases or experts; this model's no-RoPE layers are ${noRopeLayers(c).join(", ") || "none"}`,
      );
    return "smollm3";
  }
  if (c.architecture === "granite") {
    if (c.attentionBias)
      throw new Error(`GGUF export of ${label}: llama.cpp's granite wants no q/k/v biases`);
    if (!c.moe) return "granite";
    // llama.cpp's granitemoe: every layer a mixture, the top-k softmax renormalised.
    if (c.moe.sparseLayers.some((s) => !s) || !c.moe.normalizeTopK)
      throw new Error(
        `GGUF export of ${label}: llama.cpp's granitemoe makes every layer a mixture with renormalised top-k weights; this model does not`,
      );
    return "granitemoe";
  }
  if (c.architecture === "qwen2") return "qwen2";
  if (c.architecture === "qwen3_moe") {
    if (c.attentionBias)
      throw new Error(`GGUF export of ${label}: a qwen3_moe model with q/k/v biases is not supported`);
    return "qwen3moe";
  }
  if (c.architecture === "qwen3") {
    if (c.attentionBias)
      throw new Error(`GGUF export of ${label}: a qwen3 model with q/k/v biases is not supported`);
    return "qwen3";
  }
  if (c.attentionBias) {
    throw new Error(`GGUF export of ${label}: a ${c.architecture} model with q/k/v biases is not supported`);
  }
  if (c.headDim % 2 !== 0) throw new Error(`GGUF export of ${label}: head_dim ${c.headDim} is odd`);
  return "llama";
}

/**
 * Phi-3 as llama.cpp's phi3: q/k/v fused as attn_qkv and gate/up as ffn_up (gate rows first, as
 * both store them), rotate-half RoPE.
 */
function phi3Architecture(c: ModelConfig, label: string): "phi3" {
  if (!c.fusedProjections || c.attentionBias || c.moe)
    throw new Error(
      `GGUF export of ${label}: llama.cpp's phi3 wants fused projections without biases or experts`,
    );
  if (c.numHeads * c.headDim !== c.hiddenSize)
    throw new Error(
      `GGUF export of ${label}: llama.cpp's phi3 needs heads × head_dim = hidden (${c.numHeads} × ${c.headDim} ≠ ${c.hiddenSize})`,
    );
  // LongRoPE is written as llama.cpp's converter writes it (see phi3Metadata); llama.cpp applies
  // one factor table to every position, the long one once the context it is given exceeds the
  // original length, where the engine switches tables at that position.
  return "phi3";
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
    if (arch === "qwen3moe")
      kv.push({ key: k("expert_feed_forward_length"), value: gguf.u32(c.moe.expertIntermediateSize) });
  }
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
