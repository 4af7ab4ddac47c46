import type { DType } from "../../src/model/tensor.js";

/** The base config every tiny test model varies, and what each variant is written from. */

/** The tokenizer: 256 byte tokens (id = byte value), then <s> = 256, </s> = 257. */
export const TINY_VOCAB_SIZE = 258;
export const TINY_BOS = 256;
export const TINY_EOS = 257;

export interface VariantSpec {
  readonly config: Record<string, unknown>;
  readonly dtype: DType;
  readonly seed: number;
  /** Embedding values' spread (default 0.5); Gemma's √hidden scale wants a smaller one. */
  readonly embedStd?: number;
  /** gpt-oss: the experts stored as the released checkpoints store them, in MXFP4 blocks. */
  readonly mxfp4Experts?: boolean;
}

/**
 * The embedding spread of tiny models whose output matrix is the embedding table: at the default
 * 0.5 the residual stream stays its token's own embedding and greedy decoding repeats its input,
 * which would let a comparison of two engines' tokens pass whatever they computed.
 */
export const TIED_EMBED_STD = 0.05;

export const base = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: TINY_VOCAB_SIZE,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  rope_scaling: null,
  tie_word_embeddings: false,
  hidden_act: "silu",
  attention_bias: false,
  mlp_bias: false,
  bos_token_id: TINY_BOS,
  eos_token_id: TINY_EOS,
};
