import { base, type VariantSpec } from "./tiny-base.js";

/**
 * Tiny configs of the newer families (Qwen3, Phi-3, Mixtral, Qwen3-MoE), with the field names
 * their real config.json files use (including ones we accept and ignore because they only matter
 * in training, like dropouts and router losses).
 */
const half = 8; // head_dim 16 → 8 RoPE frequencies

export const FAMILY_SPECS = {
  qwen3: {
    config: {
      ...base,
      architectures: ["Qwen3ForCausalLM"],
      model_type: "qwen3",
      num_key_value_heads: 2,
      head_dim: 32,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000.0,
      tie_word_embeddings: true,
      attention_bias: false,
      attention_dropout: 0.0,
      use_sliding_window: false,
      sliding_window: null,
      max_window_layers: 2,
      layer_types: ["full_attention", "full_attention"],
    },
    dtype: "f32",
    seed: 21,
  },
  phi3: {
    config: {
      ...base,
      architectures: ["Phi3ForCausalLM"],
      model_type: "phi3",
      attention_bias: undefined,
      mlp_bias: undefined,
      sliding_window: 10,
      original_max_position_embeddings: 256,
      resid_pdrop: 0.0,
      embd_pdrop: 0.0,
      attention_dropout: 0.0,
      pad_token_id: 0,
    },
    dtype: "f32",
    seed: 22,
  },
  "phi3-longrope": {
    config: {
      ...base,
      architectures: ["Phi3ForCausalLM"],
      model_type: "phi3",
      attention_bias: undefined,
      mlp_bias: undefined,
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
      resid_pdrop: 0.0,
      embd_pdrop: 0.0,
      attention_dropout: 0.0,
    },
    dtype: "f32",
    seed: 23,
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
} satisfies Record<string, VariantSpec>;
