import { z } from "zod";
import type { Architecture, ModelConfig } from "./config.js";
import { familyFeatures } from "./hf-families.js";
import { refusePerLayerTypeRope } from "./hf-gemma.js";
import { textModelConfig } from "./hf-multimodal.js";
import { flattenLayerTypeRope, parseRopeScaling, ropeScalingSchema } from "./hf-rope.js";
import { parseWithSchema, readJsonFile } from "./json-file.js";

/**
 * Hugging Face config.json → ModelConfig, for the families we run (llama, mistral, qwen2, qwen3,
 * phi3, mixtral, qwen3_moe, gemma, gemma2, gemma3_text, granite, smollm3, olmo2, olmo3, olmoe, ernie4_5,
 * ernie4_5_moe, gpt_oss, glm4, qwen2_moe; gemma3 and mistral3 as their text model, hf-multimodal.ts). Defaults are the ones transformers applies when a key is absent;
 * anything we cannot run faithfully (other RoPE scalings, o_proj/MLP biases, non-SiLU
 * activations, per-layer sliding windows, partial rotary embeddings) is refused with an error
 * naming the file and the field, rather than silently run wrong. Family-specific fields are read
 * in hf-families.ts.
 */

const SUPPORTED: readonly Architecture[] = [
  "llama",
  "mistral",
  "qwen2",
  "qwen3",
  "phi3",
  "mixtral",
  "qwen3_moe",
  "gemma",
  "gemma2",
  "gemma3_text",
  "granite",
  "smollm3",
  "olmo2",
  "olmo3",
  "olmoe",
  "ernie4_5",
  "ernie4_5_moe",
  "gpt_oss",
  "glm4",
  "qwen2_moe",
  "glm4_moe",
  "seed_oss",
  "exaone4",
];

/** transformers' defaults per model type, for keys a config.json may leave out. */
const DEFAULTS: Record<Architecture, { maxPositions: number; rmsNormEps: number; ropeTheta: number }> = {
  llama: { maxPositions: 2048, rmsNormEps: 1e-6, ropeTheta: 10000 },
  mistral: { maxPositions: 4096 * 32, rmsNormEps: 1e-6, ropeTheta: 10000 },
  qwen2: { maxPositions: 32768, rmsNormEps: 1e-6, ropeTheta: 10000 },
  qwen3: { maxPositions: 32768, rmsNormEps: 1e-6, ropeTheta: 10000 },
  phi3: { maxPositions: 4096, rmsNormEps: 1e-5, ropeTheta: 10000 },
  mixtral: { maxPositions: 4096 * 32, rmsNormEps: 1e-5, ropeTheta: 1e6 },
  qwen3_moe: { maxPositions: 32768, rmsNormEps: 1e-6, ropeTheta: 10000 },
  gemma: { maxPositions: 8192, rmsNormEps: 1e-6, ropeTheta: 10000 },
  gemma2: { maxPositions: 8192, rmsNormEps: 1e-6, ropeTheta: 10000 },
  gemma3_text: { maxPositions: 131072, rmsNormEps: 1e-6, ropeTheta: 1e6 },
  granite: { maxPositions: 2048, rmsNormEps: 1e-6, ropeTheta: 10000 },
  smollm3: { maxPositions: 32768, rmsNormEps: 1e-6, ropeTheta: 2e6 },
  olmo2: { maxPositions: 2048, rmsNormEps: 1e-5, ropeTheta: 10000 },
  olmo3: { maxPositions: 2048, rmsNormEps: 1e-5, ropeTheta: 500000 },
  olmoe: { maxPositions: 4096, rmsNormEps: 1e-5, ropeTheta: 10000 },
  ernie4_5: { maxPositions: 131072, rmsNormEps: 1e-5, ropeTheta: 500000 },
  ernie4_5_moe: { maxPositions: 131072, rmsNormEps: 1e-5, ropeTheta: 500000 },
  glm4_moe: { maxPositions: 131072, rmsNormEps: 1e-5, ropeTheta: 10000 },
  seed_oss: { maxPositions: 524288, rmsNormEps: 1e-6, ropeTheta: 10000 },
  exaone4: { maxPositions: 2048, rmsNormEps: 1e-5, ropeTheta: 10000 },
  gpt_oss: { maxPositions: 131072, rmsNormEps: 1e-5, ropeTheta: 150000 },
  glm4: { maxPositions: 131072, rmsNormEps: 1.5625e-7, ropeTheta: 10000 },
  qwen2_moe: { maxPositions: 32768, rmsNormEps: 1e-6, ropeTheta: 10000 },
};

/** Gemma, SmolLM3 and ERNIE 4.5 tie the LM head to the embeddings unless told otherwise. */
const TIED_BY_DEFAULT: readonly Architecture[] = [
  "gemma",
  "gemma2",
  "gemma3_text",
  "smollm3",
  "ernie4_5",
  "ernie4_5_moe",
];

/** Qwen3's configs default head_dim to 128 rather than hidden / heads. */
const DEFAULT_HEAD_DIM: Partial<Record<Architecture, number>> = {
  qwen3: 128,
  qwen3_moe: 128,
  gemma: 256,
  gemma2: 256,
  gemma3_text: 256,
  ernie4_5: 128,
  ernie4_5_moe: 128,
  gpt_oss: 64,
  glm4: 128,
};

const posInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative();

const configSchema = z.object({
  model_type: z.string(),
  vocab_size: posInt,
  hidden_size: posInt,
  intermediate_size: posInt,
  num_hidden_layers: posInt,
  num_attention_heads: posInt,
  num_key_value_heads: posInt.nullish(),
  head_dim: posInt.nullish(),
  max_position_embeddings: posInt.nullish(),
  original_max_position_embeddings: posInt.nullish(),
  rms_norm_eps: z.number().positive().nullish(),
  rope_theta: z.number().positive().nullish(),
  rope_scaling: ropeScalingSchema,
  /** transformers ≥ 5 folds rope_theta and the scaling into one object. */
  rope_parameters: ropeScalingSchema,
  partial_rotary_factor: z.number().positive().nullish(),
  tie_word_embeddings: z.boolean().nullish(),
  attention_bias: z.boolean().nullish(),
  /** Seed-OSS: a bias on o_proj (its own flag beside attention_bias's q/k/v). */
  attention_out_bias: z.boolean().nullish(),
  mlp_bias: z.boolean().nullish(),
  hidden_act: z.string().nullish(),
  hidden_activation: z.string().nullish(),
  query_pre_attn_scalar: z.number().positive().nullish(),
  attn_logit_softcapping: z.number().positive().nullish(),
  final_logit_softcapping: z.number().positive().nullish(),
  /** Gemma 3: a period; EXAONE 4: a period or letters, L (local) and G (global), repeating. */
  sliding_window_pattern: z.union([posInt, z.string().regex(/^[LG]+$/, "must be letters L and G")]).nullish(),
  _sliding_window_pattern: posInt.nullish(),
  rope_local_base_freq: z.number().positive().nullish(),
  use_bidirectional_attention: z.boolean().nullish(),
  sliding_window: posInt.nullish(),
  use_sliding_window: z.boolean().nullish(),
  layer_types: z.array(z.string()).nullish(),
  num_local_experts: z.number().int().nonnegative().nullish(),
  num_experts: z.number().int().nonnegative().nullish(),
  num_experts_per_tok: posInt.nullish(),
  moe_intermediate_size: posInt.nullish(),
  norm_topk_prob: z.boolean().nullish(),
  decoder_sparse_step: posInt.nullish(),
  mlp_only_layers: z.array(z.number().int().nonnegative()).nullish(),
  shared_expert_intermediate_size: z.number().int().nonnegative().nullish(),
  /** Qwen2-MoE: biases on q/k/v (transformers' default true). */
  qkv_bias: z.boolean().nullish(),
  embedding_multiplier: z.number().positive().nullish(),
  residual_multiplier: z.number().positive().nullish(),
  attention_multiplier: z.number().positive().nullish(),
  logits_scaling: z.number().positive().nullish(),
  no_rope_layers: z.array(z.number().int().min(0).max(1)).nullish(),
  no_rope_layer_interval: posInt.nullish(),
  /** OLMoE: q/k/v clamped to ±clip_qkv (not run: refused where set). */
  clip_qkv: z.number().nullish(),
  /** ERNIE 4.5: biases on every projection, attention and MLP alike. */
  use_bias: z.boolean().nullish(),
  /** ERNIE 4.5's remote code: positions divided by it before RoPE. */
  compression_ratio: z.number().positive().nullish(),
  /** ERNIE 4.5 MoE (a list in the multimodal models, which are not run). */
  moe_num_experts: z.number().int().nonnegative().nullish(),
  moe_k: posInt.nullish(),
  moe_num_shared_experts: z.number().int().nonnegative().nullish(),
  moe_layer_start_index: z.number().int().nonnegative().nullish(),
  moe_layer_end_index: z.number().int().nullish(),
  moe_layer_interval: posInt.nullish(),
  /** gpt-oss's clamped SwiGLU (transformers fixes alpha at 1.702; newer configs state both). */
  swiglu_limit: z.number().positive().nullish(),
  swiglu_alpha: z.number().positive().nullish(),
  /** GLM-4.5 (DeepSeek V3's routing fields). */
  n_routed_experts: z.number().int().nonnegative().nullish(),
  n_shared_experts: z.number().int().nonnegative().nullish(),
  first_k_dense_replace: z.number().int().nonnegative().nullish(),
  routed_scaling_factor: z.number().positive().nullish(),
  n_group: posInt.nullish(),
  topk_group: posInt.nullish(),
  use_qk_norm: z.boolean().nullish(),
  /** Multi-token-prediction layers stored after the decoder's (GLM-4.5's); not run. */
  num_nextn_predict_layers: z.number().int().nonnegative().nullish(),
  bos_token_id: tokenId.nullish(),
  eos_token_id: z.union([tokenId, z.array(tokenId)]).nullish(),
});

export type RawConfig = z.output<typeof configSchema>;

/** Reads and validates `file` (a config.json). */
export function loadHfConfig(file: string): ModelConfig {
  return parseHfConfig(readJsonFile(file), file);
}

/** Validates an already-parsed config.json object; `file` is used in error messages. */
export function parseHfConfig(json: unknown, file: string): ModelConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new Error(`${file}: config.json must be a JSON object`);
  }
  const text = textModelConfig(json, file);
  if (text) return parseHfConfig(text, file);
  const modelType = (json as { model_type?: unknown }).model_type;
  if (modelType === undefined) throw new Error(`${file}: missing "model_type"`);
  if (modelType === "granitemoe")
    throw new Error(
      `${file}: model_type "granitemoe" from a Hugging Face directory is not supported (its experts are stacked per projection); a GGUF file of it (llama.cpp's granitemoe) is`,
    );
  if (typeof modelType !== "string" || !SUPPORTED.includes(modelType as Architecture)) {
    throw new Error(
      `${file}: unsupported model_type ${JSON.stringify(modelType)} (supported: ${SUPPORTED.join(", ")})`,
    );
  }
  if (modelType === "olmo3") {
    // OLMo 3 states RoPE per layer type (transformers 5): the window layers' plain, the full layers' scaled.
    const { flat, localTheta } = flattenLayerTypeRope(json, file);
    const c = toModelConfig(parseWithSchema(file, configSchema, flat), "olmo3", file);
    return localTheta !== undefined ? { ...c, localRopeTheta: localTheta } : c;
  }
  refusePerLayerTypeRope(json, file);
  const raw = parseWithSchema(file, configSchema, json);
  return toModelConfig(raw, modelType as Architecture, file);
}

function headGeometry(raw: RawConfig, architecture: Architecture, file: string) {
  const numHeads = raw.num_attention_heads;
  const numKvHeads = raw.num_key_value_heads ?? numHeads;
  if (numHeads % numKvHeads !== 0) {
    throw new Error(
      `${file}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
    );
  }
  let headDim = raw.head_dim ?? DEFAULT_HEAD_DIM[architecture];
  if (headDim === undefined) {
    if (raw.hidden_size % numHeads !== 0) {
      throw new Error(
        `${file}: hidden_size (${raw.hidden_size}) is not divisible by num_attention_heads (${numHeads}) and no head_dim is given`,
      );
    }
    headDim = raw.hidden_size / numHeads;
  }
  if (headDim % 2 !== 0) throw new Error(`${file}: head_dim ${headDim} must be even for RoPE`);
  return { numHeads, numKvHeads, headDim };
}

/**
 * Partial rotary embeddings: RoPE over the first partial_rotary_factor · head_dim dims of each head
 * (top level, or in rope_scaling / rope_parameters as transformers ≥ 5 writes it). Only Phi-3's
 * attention (Phi-4-mini's), GLM-4's (half a head, in interleaved pairs) and GLM-4.5's (half a
 * head, paired within it as Phi-3's) apply it in transformers; elsewhere a factor below 1 is refused.
 * Undefined: the whole head.
 */
function partialRotary(
  raw: RawConfig,
  arch: Architecture,
  headDim: number,
  file: string,
): number | undefined {
  const factor =
    raw.partial_rotary_factor ??
    raw.rope_parameters?.partial_rotary_factor ??
    raw.rope_scaling?.partial_rotary_factor ??
    // GLM-4 and GLM-4.5 rotate half of each head unless told otherwise (their configs' default).
    (arch === "glm4" || arch === "glm4_moe" ? 0.5 : undefined);
  if (factor === undefined || factor === 1) return undefined;
  if (arch !== "phi3" && arch !== "glm4" && arch !== "glm4_moe")
    throw new Error(
      `${file}: partial_rotary_factor ${factor} is not supported for ${arch} (phi3's, glm4's and glm4_moe's attention apply it)`,
    );
  const dim = headDim * factor;
  if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0 || factor > 1)
    throw new Error(
      `${file}: partial_rotary_factor ${factor} × head_dim ${headDim} = ${dim} is not an even number of dims within the head`,
    );
  return dim;
}

function toModelConfig(raw: RawConfig, architecture: Architecture, file: string): ModelConfig {
  const { numHeads, numKvHeads, headDim } = headGeometry(raw, architecture, file);
  const gemma = architecture === "gemma" || architecture === "gemma2" || architecture === "gemma3_text";
  if (!gemma && raw.hidden_act != null && raw.hidden_act !== "silu") {
    throw new Error(`${file}: hidden_act "${raw.hidden_act}" is not supported (only silu)`);
  }
  if (raw.mlp_bias === true) throw new Error(`${file}: mlp_bias=true is not supported`);
  const rotaryDim = partialRotary(raw, architecture, headDim, file);
  const features = familyFeatures(raw, architecture, file);
  const defaults = DEFAULTS[architecture];
  const maxPositionEmbeddings = raw.max_position_embeddings ?? defaults.maxPositions;
  const eos = raw.eos_token_id;
  const ropeParams = raw.rope_parameters ?? undefined;
  return {
    architecture,
    vocabSize: raw.vocab_size,
    hiddenSize: raw.hidden_size,
    intermediateSize: raw.intermediate_size,
    numLayers: raw.num_hidden_layers,
    numHeads,
    numKvHeads,
    headDim,
    maxPositionEmbeddings,
    rmsNormEps: raw.rms_norm_eps ?? defaults.rmsNormEps,
    ropeTheta: raw.rope_theta ?? ropeParams?.rope_theta ?? defaults.ropeTheta,
    ropeScaling: parseRopeScaling(raw.rope_scaling ?? ropeParams, {
      file,
      headDim: rotaryDim ?? headDim,
      maxPositionEmbeddings,
      originalMaxPositionEmbeddings: raw.original_max_position_embeddings ?? undefined,
    }),
    ...(rotaryDim !== undefined ? { rotaryDim } : {}),
    tieWordEmbeddings: raw.tie_word_embeddings ?? TIED_BY_DEFAULT.includes(architecture),
    ...features,
    bosTokenId: raw.bos_token_id ?? null,
    eosTokenIds: eos == null ? [] : Array.isArray(eos) ? eos : [eos],
  };
}
