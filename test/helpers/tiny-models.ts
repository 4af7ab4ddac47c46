import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { ModelConfig } from "../../src/model/config.js";
import { parseHfConfig } from "../../src/model/hf-config.js";
import { randomWeights } from "../../src/model/random-weights.js";
import { writeSafetensors } from "../../src/model/safetensors-writer.js";
import type { DType, Tensor } from "../../src/model/tensor.js";
import { stackGptOssExperts } from "./gpt-oss-stack.js";
import { writeRawSafetensors } from "./raw-safetensors.js";
import { base, TIED_EMBED_STD, TINY_BOS, TINY_EOS, type VariantSpec } from "./tiny-base.js";
import { FAMILY_SPECS } from "./tiny-families.js";

/**
 * Tiny, randomly initialised (seeded, deterministic) models written as real Hugging Face
 * directories: config.json, model.safetensors, generation_config.json, tokenizer.json and
 * tokenizer_config.json. One variant per supported feature, so every test can compare the engine
 * with a float64 reference on each kind of checkpoint we claim to load.
 */
export const TINY_VARIANTS = [
  "llama-mha", // llama, 4 heads / 4 KV heads, f32, untied lm_head
  "llama-gqa", // llama, 4 heads / 2 KV heads, bf16, tied embeddings
  "llama3-rope", // llama3 rope_scaling, rope_theta 500000, GQA, f32, untied
  "linear-rope", // linear rope_scaling, f16 weights
  "mistral", // mistral with a sliding window of 8, GQA, bf16, untied
  "qwen2", // qwen2: q/k/v biases, GQA, f32, tied, eos list
  "head-dim", // explicit head_dim (16) ≠ hidden/heads (48/4 = 12), f32, untied
  "qwen3", // qwen3: per-head q/k RMSNorm, head_dim 32 ≠ 64/4, GQA, f32, tied
  "qwen3-yarn", // qwen3 with YaRN rope scaling (factor 4 over an original context of 64), f32, tied
  "phi3", // phi3: fused qkv_proj / gate_up_proj, plain RoPE, sliding window 10, f32
  "phi3-longrope", // phi3 (3.5-mini style): longrope with an original context of 8, GQA, f32
  "phi4-mini", // phi3 (4-mini style): RoPE on 12 of 16 dims a head, GQA, tied, f32
  "mixtral", // mixtral: 4 experts, top-2 (softmax over the top-k), GQA, bf16
  "qwen3-moe", // qwen3_moe: 8 experts, top-3 without renormalising, layer 0 dense, f32
  "gemma", // gemma: GeGLU, (1 + w) norms, √hidden embeddings, tied, llama-style norms, bf16
  "gemma2", // gemma2: GeGLU, (1 + w) norms, post-norms, soft-caps, window layers 0 and 2, bf16
  "gemma3", // gemma3_text: + q/k norms, window layers' own RoPE base, linear-scaled global RoPE, f32
  "granite", // granite: embedding, residual, attention and logit multipliers, GQA, tied, bf16
  "smollm3", // smollm3: layer 3 of 4 without RoPE, GQA, tied, f32
  "olmo2", // olmo2: norms after the blocks only, whole-projection q/k norms, GQA, untied, bf16
  "olmoe", // olmoe: pre-norms, whole-projection q/k norms, 4 experts top-2 unrenormalised on every layer, MHA, f32
  "olmo3", // olmo3: olmo2's layers, window layers 0-2 (plain RoPE) and a full layer 3 (YaRN), per-layer-type rope_parameters, f32
  "ernie4_5", // ernie4_5: q/k rows in interleaved RoPE pairs, head_dim 32 ≠ 64/4, GQA, tied, f32
  "ernie4_5-moe", // ernie4_5_moe: layer 0 dense, 4 experts top-2 chosen with a selection bias, a shared expert, f32
  "gpt-oss", // gpt_oss: sinks, q/k/v/o biases, window layers 0 and 2, YaRN, 4 biased experts top-2 (clamped SwiGLU), stacked, f32
  "gpt-oss-mxfp4", // gpt_oss as released: the experts' stacked weights in MXFP4 blocks and scales, the rest bf16
  "qwen2-moe", // qwen2_moe: q/k/v biases, 4 experts top-2 unrenormalised, a sigmoid-gated shared expert, f32
  "glm4", // glm4: q/k/v biases, RoPE on half of each head in interleaved pairs, norms before and after each block, fused gate/up, f32
  "exaone4", // exaone4 (1.2B's shape): norms after the blocks only, per-head q/k norms, no window, GQA, tied, f32
  "exaone4-hybrid", // exaone4 (32B's shape): window layers 0-2 with RoPE, global layer 3 without, GQA, f32
  "seed-oss", // seed_oss: q/k/v biases, head_dim 32 ≠ 64/4, rope_theta 1e7, GQA, f32
  "glm4-moe", // glm4_moe: q/k/v biases, q/k norms, RoPE on half of each head, layer 0 dense, 4 experts top-2 by sigmoid score + bias (x2.5), a shared expert, f32
] as const;

export type TinyVariant = (typeof TINY_VARIANTS)[number];

export { TINY_BOS, TINY_EOS, TINY_VOCAB_SIZE } from "./tiny-base.js";

const SPECS: Record<TinyVariant, VariantSpec> = {
  "llama-mha": { config: { ...base }, dtype: "f32", seed: 11 },
  "llama-gqa": {
    config: { ...base, num_key_value_heads: 2, tie_word_embeddings: true },
    dtype: "bf16",
    seed: 12,
  },
  "llama3-rope": {
    config: {
      ...base,
      num_key_value_heads: 2,
      rope_theta: 500000.0,
      max_position_embeddings: 1024,
      rope_scaling: {
        rope_type: "llama3",
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 128,
      },
    },
    dtype: "f32",
    seed: 13,
  },
  "linear-rope": {
    config: { ...base, rope_scaling: { type: "linear", factor: 2.0 } },
    dtype: "f16",
    seed: 14,
  },
  mistral: {
    config: {
      ...base,
      architectures: ["MistralForCausalLM"],
      model_type: "mistral",
      num_key_value_heads: 2,
      sliding_window: 8,
    },
    dtype: "bf16",
    seed: 15,
  },
  qwen2: {
    config: {
      ...base,
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      num_key_value_heads: 2,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000.0,
      tie_word_embeddings: true,
      use_sliding_window: false,
      sliding_window: 32,
      eos_token_id: [TINY_EOS, TINY_BOS],
      attention_bias: undefined,
    },
    dtype: "f32",
    seed: 16,
    embedStd: TIED_EMBED_STD,
  },
  "head-dim": {
    config: { ...base, hidden_size: 48, head_dim: 16, num_key_value_heads: 2 },
    dtype: "f32",
    seed: 17,
  },
  ...FAMILY_SPECS,
};

const TORCH_DTYPE: Record<DType, string> = { f32: "float32", f16: "float16", bf16: "bfloat16" };

export interface TinyModel {
  readonly dir: string;
  readonly config: ModelConfig;
  /** The weights as written (same values the loader must return). */
  readonly weights: ReadonlyMap<string, Tensor>;
}

/** Writes the variant into `dir` (created if needed) and returns what was written. */
export function writeTinyModel(dir: string, variant: TinyVariant): TinyModel {
  const spec = SPECS[variant];
  if (spec === undefined) throw new Error(`unknown tiny model variant "${variant}"`);
  return writeTinyModelOf(dir, spec);
}

/** A tiny model of a spec no variant names (a test's own shape). */
export function writeTinyModelOf(dir: string, spec: VariantSpec): TinyModel {
  mkdirSync(dir, { recursive: true });
  const configJson = { ...spec.config, torch_dtype: TORCH_DTYPE[spec.dtype] };
  const configFile = path.join(dir, "config.json");
  writeJson(configFile, configJson);
  const config = parseHfConfig(configJson, configFile);
  const weights = randomWeights(config, {
    dtype: spec.dtype,
    seed: spec.seed,
    embedStd: spec.embedStd ?? 0.5,
    normSpread: 0.1,
    biasStd: 0.2,
  });
  const file = path.join(dir, "model.safetensors");
  let written: ReadonlyMap<string, Tensor> = weights;
  if (config.architecture === "gpt_oss") {
    // Its checkpoints stack the experts (gpt-oss-stack.ts); the loader must split them back.
    const { stored, loaded } = stackGptOssExperts(config, weights, spec.mxfp4Experts === true);
    writeRawSafetensors(file, stored);
    written = loaded;
  } else writeSafetensors(file, weights.values(), { format: "pt" });
  writeJson(path.join(dir, "generation_config.json"), {
    bos_token_id: TINY_BOS,
    eos_token_id: spec.config.eos_token_id,
    do_sample: false,
  });
  writeJson(path.join(dir, "tokenizer.json"), byteLevelTokenizerJson());
  writeJson(path.join(dir, "tokenizer_config.json"), tokenizerConfigJson());
  return { dir, config, weights: written };
}

function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** GPT-2's reversible byte → printable character map used by byte-level BPE vocabularies. */
function byteToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    out[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++);
  }
  return out;
}

/** A byte-level BPE with the 256 byte tokens and no merges: every byte of the text is one token. */
export function byteLevelTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  byteToUnicode().forEach((ch, b) => {
    vocab[ch] = b;
  });
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [special(TINY_BOS, "<s>"), special(TINY_EOS, "</s>")],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<s>": { id: "<s>", ids: [TINY_BOS], tokens: ["<s>"] } },
    },
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

function tokenizerConfigJson(): Record<string, unknown> {
  return {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: "<s>",
    eos_token: "</s>",
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: 256,
    chat_template:
      "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}" +
      "{% if add_generation_prompt %}<|assistant|>{% endif %}",
  };
}
