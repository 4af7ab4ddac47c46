import { existsSync } from "node:fs";
import path from "node:path";
import type { DType } from "../../src/model/tensor.js";
import { BYTE_BOS, BYTE_EOS, BYTE_VOCAB } from "../common/byte-tokenizer.js";
import { intFlag } from "../common/flags.js";
import { TORCH_DTYPE, writeRandomModelDir } from "../common/random-model.js";

/** Shape of a random-weight Llama written for the disaggregation benchmarks. */
export interface BenchShape {
  readonly hidden: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly intermediate: number;
  readonly maxPositions: number;
  readonly dtype: DType;
  /**
   * Window layers among global ones, as Gemma 3 has them: every `every`-th layer global, the others
   * attending within `size` keys (written as a Gemma 3 text model; absent: a Llama).
   */
  readonly window?: { readonly size: number; readonly every: number };
}

/** The config.json fields that make a bench shape's Llama a Gemma 3 text model with its window layers. */
function gemma3Fields(s: BenchShape, w: NonNullable<BenchShape["window"]>): Record<string, unknown> {
  return {
    architectures: ["Gemma3ForCausalLM"],
    model_type: "gemma3_text",
    head_dim: s.hidden / s.heads,
    hidden_act: undefined,
    hidden_activation: "gelu_pytorch_tanh",
    rms_norm_eps: 1e-6,
    query_pre_attn_scalar: s.hidden / s.heads,
    attn_logit_softcapping: null,
    final_logit_softcapping: null,
    sliding_window: w.size,
    sliding_window_pattern: w.every,
    rope_theta: 1000000.0,
    rope_local_base_freq: 10000.0,
    tie_word_embeddings: true,
    mlp_bias: undefined,
    attention_bias: false,
  };
}

/** The shape flags the decode benchmarks share (defaults: a model whose sides balance near 640 tokens). */
export const SHAPE_FLAGS = {
  hidden: { type: "string", default: "1024" },
  layers: { type: "string", default: "8" },
  heads: { type: "string", default: "16" },
  "kv-heads": { type: "string", default: "16" },
  intermediate: { type: "string", default: "2816" },
  dtype: { type: "string", default: "bf16" },
} as const;

/** The shape from parsed SHAPE_FLAGS, with room for `positions` tokens. */
export function shapeFromFlags(
  values: Record<keyof typeof SHAPE_FLAGS, string | boolean | undefined>,
  positions: number,
): BenchShape {
  const num = (k: keyof typeof SHAPE_FLAGS) => intFlag(values[k] as string, k);
  return {
    hidden: num("hidden"),
    layers: num("layers"),
    heads: num("heads"),
    kvHeads: num("kv-heads"),
    intermediate: num("intermediate"),
    maxPositions: Math.max(1024, positions),
    dtype: values.dtype as DType,
  };
}

/**
 * Writes (once per shape, under `root`) a Hugging Face directory with seeded random weights and
 * a byte-level tokenizer: timing depends on the shape, not on the values.
 */
export function ensureBenchModel(root: string, s: BenchShape): string {
  const windowed = s.window ? `-w${s.window.size}x${s.window.every}` : "";
  const name = `disagg-h${s.hidden}-l${s.layers}-a${s.heads}-kv${s.kvHeads}-i${s.intermediate}-p${s.maxPositions}-${s.dtype}${windowed}`;
  const dir = path.join(root, name);
  if (existsSync(path.join(dir, "config.json"))) return dir;
  const configJson = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: s.hidden,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    intermediate_size: s.intermediate,
    max_position_embeddings: s.maxPositions,
    vocab_size: BYTE_VOCAB,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    rope_scaling: null,
    tie_word_embeddings: false,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: BYTE_BOS,
    eos_token_id: BYTE_EOS,
    torch_dtype: TORCH_DTYPE[s.dtype],
    ...(s.window ? gemma3Fields(s, s.window) : {}),
  };
  writeRandomModelDir(dir, configJson, s.dtype, 4242);
  return dir;
}

/** Prompt ids: BOS, then bytes that differ per sequence. */
export function benchPrompt(length: number, salt: number): number[] {
  const ids = [BYTE_BOS];
  for (let i = 1; i < length; i++) ids.push((i * 131 + salt * 977) % 256);
  return ids;
}
