import { z } from "zod";
import type { Architecture, ModelConfig, RopeScaling } from "./config.js";
import { parseWithSchema, readJsonFile } from "./json-file.js";

/**
 * Hugging Face config.json → ModelConfig, for the Llama family we run (llama, mistral, qwen2).
 * Defaults are the ones transformers applies when a key is absent; anything we cannot run
 * faithfully (other RoPE scalings, o_proj/MLP biases, non-SiLU activations, Qwen2's per-layer
 * sliding window) is refused with an error naming the file, rather than silently run wrong.
 */

const SUPPORTED: readonly Architecture[] = ["llama", "mistral", "qwen2"];

/** transformers' default max_position_embeddings per model type. */
const DEFAULT_MAX_POSITIONS: Record<Architecture, number> = { llama: 2048, mistral: 4096 * 32, qwen2: 32768 };

const posInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative();

const ropeScalingSchema = z
  .object({
    type: z.string().optional(),
    rope_type: z.string().optional(),
    rope_theta: z.number().positive().optional(),
    factor: z.number().positive().optional(),
    low_freq_factor: z.number().positive().optional(),
    high_freq_factor: z.number().positive().optional(),
    original_max_position_embeddings: posInt.optional(),
  })
  .nullish();

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
  rms_norm_eps: z.number().positive().nullish(),
  rope_theta: z.number().positive().nullish(),
  rope_scaling: ropeScalingSchema,
  /** transformers ≥ 5 folds rope_theta and the scaling into one object. */
  rope_parameters: ropeScalingSchema,
  tie_word_embeddings: z.boolean().nullish(),
  attention_bias: z.boolean().nullish(),
  mlp_bias: z.boolean().nullish(),
  hidden_act: z.string().nullish(),
  sliding_window: posInt.nullish(),
  use_sliding_window: z.boolean().nullish(),
  bos_token_id: tokenId.nullish(),
  eos_token_id: z.union([tokenId, z.array(tokenId)]).nullish(),
});

type RawConfig = z.output<typeof configSchema>;

/** Reads and validates `file` (a config.json). */
export function loadHfConfig(file: string): ModelConfig {
  return parseHfConfig(readJsonFile(file), file);
}

/** Validates an already-parsed config.json object; `file` is used in error messages. */
export function parseHfConfig(json: unknown, file: string): ModelConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new Error(`${file}: config.json must be a JSON object`);
  }
  const modelType = (json as { model_type?: unknown }).model_type;
  if (modelType === undefined) throw new Error(`${file}: missing "model_type"`);
  if (typeof modelType !== "string" || !SUPPORTED.includes(modelType as Architecture)) {
    throw new Error(
      `${file}: unsupported model_type ${JSON.stringify(modelType)} (supported: ${SUPPORTED.join(", ")})`,
    );
  }
  const raw = parseWithSchema(file, configSchema, json);
  return toModelConfig(raw, modelType as Architecture, file);
}

function toModelConfig(raw: RawConfig, architecture: Architecture, file: string): ModelConfig {
  const numHeads = raw.num_attention_heads;
  const numKvHeads = raw.num_key_value_heads ?? numHeads;
  if (numHeads % numKvHeads !== 0) {
    throw new Error(
      `${file}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
    );
  }
  let headDim = raw.head_dim ?? undefined;
  if (headDim === undefined) {
    if (raw.hidden_size % numHeads !== 0) {
      throw new Error(
        `${file}: hidden_size (${raw.hidden_size}) is not divisible by num_attention_heads (${numHeads}) and no head_dim is given`,
      );
    }
    headDim = raw.hidden_size / numHeads;
  }
  if (headDim % 2 !== 0) throw new Error(`${file}: head_dim ${headDim} must be even for RoPE`);
  if (raw.hidden_act != null && raw.hidden_act !== "silu") {
    throw new Error(`${file}: hidden_act "${raw.hidden_act}" is not supported (only silu)`);
  }
  if (raw.mlp_bias === true) throw new Error(`${file}: mlp_bias=true is not supported`);

  let attentionBias: boolean;
  if (architecture === "qwen2") {
    attentionBias = true; // Qwen2 always carries q/k/v biases (and none on o_proj).
  } else {
    if (raw.attention_bias === true) {
      // In transformers' Llama/Mistral this also puts a bias on o_proj, which ModelConfig cannot express.
      throw new Error(
        `${file}: attention_bias=true (biases on q/k/v and o_proj) is not supported for ${architecture}`,
      );
    }
    attentionBias = false;
  }

  let slidingWindow: number | null = null;
  if (architecture === "mistral") slidingWindow = raw.sliding_window ?? null;
  if (architecture === "qwen2" && raw.use_sliding_window === true) {
    throw new Error(`${file}: qwen2 use_sliding_window=true (per-layer sliding window) is not supported`);
  }

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
    maxPositionEmbeddings: raw.max_position_embeddings ?? DEFAULT_MAX_POSITIONS[architecture],
    rmsNormEps: raw.rms_norm_eps ?? 1e-6,
    ropeTheta: raw.rope_theta ?? ropeParams?.rope_theta ?? 10000,
    ropeScaling: parseRopeScaling(raw.rope_scaling ?? ropeParams, file),
    tieWordEmbeddings: raw.tie_word_embeddings ?? false,
    attentionBias,
    slidingWindow,
    bosTokenId: raw.bos_token_id ?? null,
    eosTokenIds: eos == null ? [] : Array.isArray(eos) ? eos : [eos],
  };
}

function parseRopeScaling(rs: z.output<typeof ropeScalingSchema>, file: string): RopeScaling | null {
  if (rs == null) return null;
  const kind = rs.rope_type ?? rs.type ?? "default";
  const need = <T>(value: T | undefined, key: string): T => {
    if (value === undefined) throw new Error(`${file}: rope_scaling of type "${kind}" needs "${key}"`);
    return value;
  };
  switch (kind) {
    case "default":
      return null;
    case "linear":
      return { type: "linear", factor: need(rs.factor, "factor") };
    case "llama3":
      return {
        type: "llama3",
        factor: need(rs.factor, "factor"),
        lowFreqFactor: need(rs.low_freq_factor, "low_freq_factor"),
        highFreqFactor: need(rs.high_freq_factor, "high_freq_factor"),
        originalMaxPositionEmbeddings: need(
          rs.original_max_position_embeddings,
          "original_max_position_embeddings",
        ),
      };
    default:
      throw new Error(`${file}: rope_scaling type "${kind}" is not supported (supported: llama3, linear)`);
  }
}
