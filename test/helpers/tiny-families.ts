import { base, TIED_EMBED_STD, type VariantSpec } from "./tiny-base.js";

/**
 * Tiny configs of the newer families (Qwen3 with and without YaRN, ERNIE 4.5 dense and MoE, OLMo 3, OLMoE, Phi-3, Mixtral, Qwen3-MoE, Gemma 2 and 3, Granite, SmolLM3, OLMo 2), with the field names
 * their real config.json files use (including ones we accept and ignore because they only matter
 * in training, like dropouts and router losses).
 */
const half = 8; // head_dim 16 → 8 RoPE frequencies

/** Phi-3's config.json fields every Phi-3 variant below shares (dropouts it ignores included). */
const phi3Base = {
  ...base,
  architectures: ["Phi3ForCausalLM"],
  model_type: "phi3",
  attention_bias: undefined,
  mlp_bias: undefined,
  resid_pdrop: 0.0,
  embd_pdrop: 0.0,
  attention_dropout: 0.0,
};

/** Qwen3's config.json fields (rope_theta aside) the Qwen3 variants below share. */
const qwen3Base = {
  ...base,
  architectures: ["Qwen3ForCausalLM"],
  model_type: "qwen3",
  num_key_value_heads: 2,
  head_dim: 32,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  attention_bias: false,
  use_sliding_window: false,
  sliding_window: null,
};

const gptOssBase = {
  ...base,
  architectures: ["GptOssForCausalLM"],
  model_type: "gpt_oss",
  num_hidden_layers: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  intermediate_size: 32,
  num_local_experts: 4,
  num_experts_per_tok: 2,
  experts_per_token: 2,
  sliding_window: 6,
  layer_types: ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
  attention_bias: true,
  mlp_bias: undefined,
  swiglu_limit: 7.0,
  rope_theta: 150000.0,
  rope_scaling: {
    rope_type: "yarn",
    factor: 4.0,
    beta_fast: 32.0,
    beta_slow: 1.0,
    original_max_position_embeddings: 64,
  },
  initial_context_length: 64,
  router_aux_loss_coef: 0.9,
  output_router_logits: false,
  attention_dropout: 0.0,
};

export const FAMILY_SPECS = {
  qwen3: {
    config: {
      ...qwen3Base,
      rope_theta: 1000000.0,
      attention_dropout: 0.0,
      max_window_layers: 2,
      layer_types: ["full_attention", "full_attention"],
    },
    dtype: "f32",
    seed: 23,
    embedStd: TIED_EMBED_STD,
  },
  /**
   * Qwen3 with YaRN as Qwen's model cards enable it (rope_type yarn, a factor, the original
   * context): an original context of 64 puts the ramp over the first 5 of 16 frequencies.
   */
  "qwen3-yarn": {
    config: {
      ...qwen3Base,
      rope_scaling: { rope_type: "yarn", factor: 4.0, original_max_position_embeddings: 64 },
    },
    dtype: "f32",
    seed: 25,
    embedStd: TIED_EMBED_STD,
  },
  /**
   * ERNIE 4.5 (0.3B's shape, scaled down): Llama's layers with q/k rows in interleaved RoPE pairs,
   * head_dim 32 ≠ 64/4, GQA, tied, rope_theta 500000, no biases.
   */
  ernie4_5: {
    config: {
      ...base,
      architectures: ["Ernie4_5ForCausalLM"],
      model_type: "ernie4_5",
      num_key_value_heads: 2,
      head_dim: 32,
      rope_theta: 500000.0,
      tie_word_embeddings: true,
      use_bias: false,
      attention_bias: undefined,
      mlp_bias: undefined,
    },
    dtype: "f32",
    seed: 28,
    embedStd: TIED_EMBED_STD,
  },
  /**
   * ERNIE 4.5 MoE (21B-A3B's routing, scaled down): layer 0 dense, layers 1 and 2 mixtures of 4
   * experts, top-2 chosen on probability + e_score_correction_bias, renormalised, plus one shared
   * expert; ERNIE's interleaved q/k rows.
   */
  "ernie4_5-moe": {
    config: {
      ...base,
      architectures: ["Ernie4_5_MoeForCausalLM"],
      model_type: "ernie4_5_moe",
      num_hidden_layers: 3,
      num_key_value_heads: 2,
      head_dim: 32,
      rope_theta: 500000.0,
      tie_word_embeddings: true,
      use_bias: false,
      moe_num_experts: 4,
      moe_k: 2,
      moe_intermediate_size: 32,
      moe_num_shared_experts: 1,
      moe_layer_start_index: 1,
      moe_layer_end_index: -1,
      moe_layer_interval: 1,
      attention_bias: undefined,
      mlp_bias: undefined,
    },
    dtype: "f32",
    seed: 29,
    embedStd: TIED_EMBED_STD,
  },
  phi3: {
    config: { ...phi3Base, sliding_window: 10, original_max_position_embeddings: 256, pad_token_id: 0 },
    dtype: "f32",
    seed: 22,
  },
  "phi3-longrope": {
    config: {
      ...phi3Base,
      hidden_size: 64,
      num_key_value_heads: 2,
      max_position_embeddings: 256,
      // Positions from 8 on take the long factors: the test prompts cross it.
      original_max_position_embeddings: 8,
      rope_scaling: {
        type: "longrope",
        short_factor: Array.from({ length: half }, (_, i) => 1 + 0.05 * i),
        long_factor: Array.from({ length: half }, (_, i) => 1 + 2.5 * i),
      },
      sliding_window: 262144,
    },
    dtype: "f32",
    seed: 23,
  },
  /**
   * Phi-4-mini's attention: RoPE over the first 3/4 of each head (partial_rotary_factor 0.75: 12 of
   * 16 dims), the rest passed through; GQA, tied, no window shorter than the context.
   */
  "phi4-mini": {
    config: {
      ...phi3Base,
      num_key_value_heads: 2,
      partial_rotary_factor: 0.75,
      tie_word_embeddings: true,
      sliding_window: 262144,
      original_max_position_embeddings: 256,
    },
    dtype: "f32",
    seed: 31,
    embedStd: TIED_EMBED_STD,
  },
  mixtral: {
    config: {
      ...base,
      architectures: ["MixtralForCausalLM"],
      model_type: "mixtral",
      num_key_value_heads: 2,
      intermediate_size: 64,
      num_local_experts: 4,
      num_experts_per_tok: 2,
      rope_theta: 1000000.0,
      sliding_window: null,
      router_aux_loss_coef: 0.02,
      router_jitter_noise: 0.0,
      output_router_logits: false,
      attention_bias: undefined,
      mlp_bias: undefined,
    },
    dtype: "bf16",
    seed: 24,
  },
  "qwen3-moe": {
    config: {
      ...base,
      architectures: ["Qwen3MoeForCausalLM"],
      model_type: "qwen3_moe",
      num_key_value_heads: 2,
      head_dim: 16,
      intermediate_size: 96,
      moe_intermediate_size: 32,
      num_experts: 8,
      num_experts_per_tok: 3,
      norm_topk_prob: false,
      decoder_sparse_step: 1,
      mlp_only_layers: [0],
      rms_norm_eps: 1e-6,
      attention_bias: false,
      use_sliding_window: false,
      sliding_window: null,
      router_aux_loss_coef: 0.001,
      output_router_logits: false,
    },
    dtype: "f32",
    seed: 25,
  },
  /**
   * Gemma (1) as its config.json spells it: GeGLU (hidden_act "gelu", which transformers runs as
   * the tanh approximation), (1 + w) norms, √hidden embeddings, tied; no post-norms, soft-caps or
   * window; scores scaled by head_dim^-½. bf16 at hidden 48.
   */
  gemma: {
    config: {
      ...base,
      architectures: ["GemmaForCausalLM"],
      model_type: "gemma",
      hidden_size: 48,
      intermediate_size: 96,
      num_hidden_layers: 3,
      num_key_value_heads: 2,
      head_dim: 24,
      hidden_act: "gelu",
      hidden_activation: null,
      rms_norm_eps: 1e-6,
      tie_word_embeddings: undefined,
      attention_bias: false,
      attention_dropout: 0.0,
      pad_token_id: 0,
    },
    dtype: "bf16",
    seed: 27,
    // √48 scales the embeddings up and the output is tied to them: at a larger spread the residual
    // stream stays its token's own embedding and every step repeats its input.
    embedStd: 0.003,
  },
  /**
   * Gemma 2 as its config.json spells it: window layers (0, 2) alternate with global ones (1, 3),
   * a window of 6 the test prompts outgrow, query_pre_attn_scalar ≠ head_dim, and soft-caps small
   * enough to bend these tiny models' scores and logits (the real ones are 50 and 30). bf16 with
   * hidden 48, so √hidden (6.93) is rounded to bf16 (6.94) as transformers rounds it.
   */
  gemma2: {
    config: {
      ...base,
      architectures: ["Gemma2ForCausalLM"],
      model_type: "gemma2",
      hidden_size: 48,
      intermediate_size: 96,
      num_hidden_layers: 4,
      num_key_value_heads: 2,
      head_dim: 32,
      hidden_act: "gelu_pytorch_tanh",
      hidden_activation: "gelu_pytorch_tanh",
      rms_norm_eps: 1e-6,
      tie_word_embeddings: undefined,
      mlp_bias: undefined,
      query_pre_attn_scalar: 24,
      attn_logit_softcapping: 1.5,
      final_logit_softcapping: 4.0,
      sliding_window: 6,
      cache_implementation: "hybrid",
      attention_dropout: 0.0,
      pad_token_id: 0,
    },
    dtype: "bf16",
    seed: 26,
  },
  /**
   * Gemma 3 (text): q/k norms, window layers 0 and 1 of every 3 (sliding_window_pattern) with
   * their own RoPE base, the global layer with rope_theta and linear scaling, no soft-caps.
   */
  gemma3: {
    config: {
      ...base,
      architectures: ["Gemma3ForCausalLM"],
      model_type: "gemma3_text",
      num_hidden_layers: 3,
      num_key_value_heads: 2,
      head_dim: 16,
      hidden_act: undefined,
      hidden_activation: "gelu_pytorch_tanh",
      rms_norm_eps: 1e-6,
      tie_word_embeddings: undefined,
      mlp_bias: undefined,
      query_pre_attn_scalar: 20,
      attn_logit_softcapping: null,
      final_logit_softcapping: null,
      sliding_window: 5,
      sliding_window_pattern: 3,
      rope_theta: 1000000.0,
      rope_local_base_freq: 10000.0,
      rope_scaling: { rope_type: "linear", factor: 8.0 },
      attention_dropout: 0.0,
      use_cache: true,
      pad_token_id: 0,
    },
    dtype: "f32",
    seed: 27,
  },
  /**
   * Granite 3 as its config.json spells it: embeddings × embedding_multiplier, each block's output ×
   * residual_multiplier, logits ÷ logits_scaling and scores × attention_multiplier (here 1/head_dim,
   * not 1/√head_dim), tied, GQA, bf16. A real 2B model's embedding and residual multipliers (12 and
   * 0.22) leave these random blocks too little say: greedy decoding repeats its input, so the tiny
   * model scales the blocks up instead.
   */
  granite: {
    config: {
      ...base,
      architectures: ["GraniteForCausalLM"],
      model_type: "granite",
      num_key_value_heads: 2,
      tie_word_embeddings: true,
      embedding_multiplier: 2.0,
      residual_multiplier: 2.5,
      attention_multiplier: 0.0625,
      logits_scaling: 8.0,
      attention_dropout: 0.0,
      pad_token_id: 0,
    },
    dtype: "bf16",
    seed: 28,
    embedStd: TIED_EMBED_STD,
  },
  /**
   * SmolLM3 as its config.json spells it: Llama layers, tied, GQA, with layer 3 of 4 attending
   * without RoPE (no_rope_layers 0), as every fourth layer of the real models does.
   */
  smollm3: {
    config: {
      ...base,
      architectures: ["SmolLM3ForCausalLM"],
      model_type: "smollm3",
      num_hidden_layers: 4,
      num_key_value_heads: 2,
      tie_word_embeddings: true,
      rope_theta: 50000.0,
      no_rope_layers: [1, 1, 1, 0],
      no_rope_layer_interval: 4,
      use_sliding_window: false,
      sliding_window: null,
      layer_types: ["full_attention", "full_attention", "full_attention", "full_attention"],
      attention_dropout: 0.0,
      pad_token_id: 0,
    },
    dtype: "f32",
    seed: 29,
    embedStd: TIED_EMBED_STD,
  },
  /**
   * OLMo 2 as its config.json spells it: no norms before the blocks, RMSNorms on each block's
   * output (post_attention_layernorm, post_feedforward_layernorm), q and k normed over their whole
   * projections (weights [heads·head_dim]), GQA, untied, bf16.
   */
  olmo2: {
    config: {
      ...base,
      architectures: ["Olmo2ForCausalLM"],
      model_type: "olmo2",
      num_key_value_heads: 2,
      rms_norm_eps: 1e-6,
      rope_theta: 500000.0,
      attention_dropout: 0.0,
      pad_token_id: 0,
    },
    dtype: "bf16",
    seed: 30,
  },
  /**
   * OLMoE (1B-7B's shape, scaled down): pre-norm layers, whole-projection q/k norms, every layer a
   * mixture of 4 experts, top-2 keeping their softmax share (norm_topk_prob false), MHA.
   */
  olmoe: {
    config: {
      ...base,
      architectures: ["OlmoeForCausalLM"],
      model_type: "olmoe",
      intermediate_size: 32,
      num_experts: 4,
      num_experts_per_tok: 2,
      norm_topk_prob: false,
      clip_qkv: null,
      router_aux_loss_coef: 0.01,
      output_router_logits: false,
      attention_dropout: 0.0,
    },
    dtype: "f32",
    seed: 33,
  },
  /**
   * OLMo 3 (7B's pattern, scaled down): OLMo 2's layers, layers 0-2 attending within 6 keys with
   * plain RoPE, layer 3 over all with YaRN (factor 4 over an original 32), as rope_parameters per
   * layer type (transformers 5's form).
   */
  olmo3: {
    config: {
      ...base,
      architectures: ["Olmo3ForCausalLM"],
      model_type: "olmo3",
      num_hidden_layers: 4,
      num_key_value_heads: 2,
      rms_norm_eps: 1e-6,
      sliding_window: 6,
      layer_types: ["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
      rope_theta: undefined,
      rope_scaling: undefined,
      rope_parameters: {
        sliding_attention: { rope_type: "default", rope_theta: 10000.0 },
        full_attention: {
          rope_type: "yarn",
          rope_theta: 10000.0,
          factor: 4.0,
          original_max_position_embeddings: 32,
        },
      },
      attention_dropout: 0.0,
    },
    dtype: "f32",
    seed: 32,
  },
  /**
   * gpt-oss (20B's pattern, scaled down): a sink logit per head, biases on q/k/v/o, layers 0 and 2
   * attending within 6 keys, YaRN (factor 4 over an original 64), and every layer a mixture of 4
   * experts (top-2, softmax over the chosen) with biases and the clamped SwiGLU, stacked as the
   * checkpoints store them (gpt-oss-stack.ts).
   */
  "gpt-oss": {
    config: gptOssBase,
    dtype: "f32",
    seed: 34,
  },
  /**
   * Qwen1.5-MoE / Qwen2-MoE (A2.7B's pattern, scaled down): q/k/v biases, every layer 4 experts
   * top-2 keeping their softmax share, and a shared expert behind a sigmoid gate.
   */
  "qwen2-moe": {
    config: {
      ...base,
      architectures: ["Qwen2MoeForCausalLM"],
      model_type: "qwen2_moe",
      num_hidden_layers: 3,
      num_key_value_heads: 2,
      num_experts: 4,
      num_experts_per_tok: 2,
      moe_intermediate_size: 32,
      shared_expert_intermediate_size: 48,
      norm_topk_prob: false,
      decoder_sparse_step: 1,
      mlp_only_layers: [],
      qkv_bias: true,
      use_sliding_window: false,
      sliding_window: 32,
      max_window_layers: 3,
      rms_norm_eps: 1e-6,
      attention_bias: undefined,
    },
    dtype: "f32",
    // Seed 37's continuation met a near tie (the reference's top two 6e-4 apart at logits near 3)
    // that llama.cpp broke the other way; 38's has none in the 30 tokens compared.
    seed: 38,
  },
  /**
   * GLM-4-0414 (9B's pattern, scaled down): q/k/v biases, RoPE on the first half of each head in
   * interleaved pairs, a norm after each block as well as before, gate/up fused, GQA, untied.
   */
  glm4: {
    config: {
      ...base,
      architectures: ["Glm4ForCausalLM"],
      model_type: "glm4",
      num_key_value_heads: 2,
      head_dim: 32,
      partial_rotary_factor: 0.5,
      attention_bias: true,
      rms_norm_eps: 1e-5,
      pad_token_id: 0,
    },
    dtype: "f32",
    seed: 36,
  },
  /**
   * GLM-4.5 (Air's pattern, scaled down): q/k/v biases, per-head q/k norms, RoPE on the first
   * half of each head paired within it, layer 0 dense, then 4 experts top-2 by sigmoid score +
   * correction bias, renormalised and scaled by 2.5, and a shared expert; GQA, untied.
   */
  "glm4-moe": {
    config: {
      ...base,
      architectures: ["Glm4MoeForCausalLM"],
      model_type: "glm4_moe",
      num_hidden_layers: 3,
      num_key_value_heads: 2,
      head_dim: 32,
      partial_rotary_factor: 0.5,
      attention_bias: true,
      use_qk_norm: true,
      first_k_dense_replace: 1,
      n_routed_experts: 4,
      n_shared_experts: 1,
      num_experts_per_tok: 2,
      moe_intermediate_size: 32,
      norm_topk_prob: true,
      routed_scaling_factor: 2.5,
      n_group: 1,
      topk_group: 1,
      num_nextn_predict_layers: 0,
      pad_token_id: 0,
    },
    dtype: "f32",
    seed: 39,
  },
  /**
   * EXAONE 4.0 (1.2B's pattern, scaled down): OLMo 2's norms on the blocks' outputs, per-head q/k
   * norms, no window, GQA, tied embeddings.
   */
  exaone4: {
    config: {
      ...base,
      architectures: ["Exaone4ForCausalLM"],
      model_type: "exaone4",
      num_hidden_layers: 3,
      num_key_value_heads: 2,
      sliding_window: null,
      sliding_window_pattern: null,
      tie_word_embeddings: true,
      rope_theta: 1000000.0,
    },
    dtype: "f32",
    seed: 41,
    embedStd: TIED_EMBED_STD,
  },
  /**
   * EXAONE 4.0 (32B's pattern, scaled down): window layers 0-2 with RoPE, layer 3 global without
   * (sliding_window_pattern "LLLG"), window 6.
   */
  "exaone4-hybrid": {
    config: {
      ...base,
      architectures: ["Exaone4ForCausalLM"],
      model_type: "exaone4",
      num_hidden_layers: 4,
      num_key_value_heads: 2,
      sliding_window: 6,
      sliding_window_pattern: "LLLG",
      rope_theta: 1000000.0,
    },
    dtype: "f32",
    seed: 42,
  },
  /** Seed-OSS (36B's pattern, scaled down): q/k/v biases (none on o_proj, as released), GQA, untied. */
  "seed-oss": {
    config: {
      ...base,
      architectures: ["SeedOssForCausalLM"],
      model_type: "seed_oss",
      num_key_value_heads: 2,
      head_dim: 32,
      attention_bias: true,
      attention_out_bias: false,
      mlp_bias: false,
      residual_dropout: 0.1,
      rope_theta: 10000000.0,
      rms_norm_eps: 1e-6,
    },
    dtype: "f32",
    seed: 40,
  },
  /** As released: experts in MXFP4 blocks (quantization_config mxfp4), the rest bf16, YaRN untruncated. */
  "gpt-oss-mxfp4": {
    config: {
      ...gptOssBase,
      rope_scaling: { ...gptOssBase.rope_scaling, truncate: false },
      quantization_config: {
        quant_method: "mxfp4",
        modules_to_not_convert: [
          "model.layers.*.self_attn",
          "model.layers.*.mlp.router",
          "model.embed_tokens",
          "lm_head",
        ],
      },
    },
    dtype: "bf16",
    seed: 35,
    mxfp4Experts: true,
  },
} satisfies Record<string, VariantSpec>;
