import { hasPostNorms, type ModelConfig } from "./config.js";

/** Hugging Face weight names → llama.cpp's: one table for the GGUF writer and the GGUF loader. */
const LAYER_NAMES: Readonly<Record<string, string>> = {
  "input_layernorm.weight": "attn_norm.weight",
  "self_attn.q_proj.weight": "attn_q.weight",
  "self_attn.k_proj.weight": "attn_k.weight",
  "self_attn.v_proj.weight": "attn_v.weight",
  "self_attn.q_proj.bias": "attn_q.bias",
  "self_attn.k_proj.bias": "attn_k.bias",
  "self_attn.v_proj.bias": "attn_v.bias",
  "self_attn.o_proj.weight": "attn_output.weight",
  // gpt-oss: o_proj's bias, the sinks (llama.cpp's converter names them a weight) and the router's bias.
  "self_attn.o_proj.bias": "attn_output.bias",
  "self_attn.sinks": "attn_sinks.weight",
  "mlp.router.weight": "ffn_gate_inp.weight",
  "mlp.router.bias": "ffn_gate_inp.bias",
  // Phi-3's fused projections: q/k/v rows in one matrix, and gate then up rows in ffn_up.
  "self_attn.qkv_proj.weight": "attn_qkv.weight",
  "mlp.gate_up_proj.weight": "ffn_up.weight",
  // Qwen3's per-head RMSNorm of q and k (after the projections, before RoPE).
  "self_attn.q_norm.weight": "attn_q_norm.weight",
  "self_attn.k_norm.weight": "attn_k_norm.weight",
  "post_attention_layernorm.weight": "ffn_norm.weight",
  // GLM-4's norms on the attention output and the FFN output (its post_attention_layernorm is the
  // norm before the FFN, ffn_norm as for Llama).
  "post_self_attn_layernorm.weight": "post_attention_norm.weight",
  "post_mlp_layernorm.weight": "post_ffw_norm.weight",
  "mlp.gate_proj.weight": "ffn_gate.weight",
  "mlp.up_proj.weight": "ffn_up.weight",
  "mlp.down_proj.weight": "ffn_down.weight",
  // The routers of Mixtral (llama.cpp's llama architecture with experts) and of Qwen3-MoE.
  "block_sparse_moe.gate.weight": "ffn_gate_inp.weight",
  "mlp.gate.weight": "ffn_gate_inp.weight",
  // ERNIE 4.5's expert selection bias ([1, experts], stored 1-D) and shared expert.
  "mlp.moe_statics.e_score_correction_bias": "exp_probs_b.bias",
  // GLM-4.5's (DeepSeek V3's name, beside the router).
  "mlp.gate.e_score_correction_bias": "exp_probs_b.bias",
  "mlp.shared_experts.gate_proj.weight": "ffn_gate_shexp.weight",
  "mlp.shared_experts.up_proj.weight": "ffn_up_shexp.weight",
  "mlp.shared_experts.down_proj.weight": "ffn_down_shexp.weight",
  // Qwen2-MoE's shared expert (singular) and its sigmoid gate ([1, hidden], stored 1-D).
  "mlp.shared_expert.gate_proj.weight": "ffn_gate_shexp.weight",
  "mlp.shared_expert.up_proj.weight": "ffn_up_shexp.weight",
  "mlp.shared_expert.down_proj.weight": "ffn_down_shexp.weight",
  "mlp.shared_expert_gate.weight": "ffn_gate_inp_shexp.weight",
};
/**
 * Gemma 2 and 3 (four norms a layer): there post_attention_layernorm is the norm on the attention
 * output, and the norm before the FFN is pre_feedforward_layernorm.
 */
const POST_NORM_NAMES: Readonly<Record<string, string>> = {
  "post_attention_layernorm.weight": "post_attention_norm.weight",
  "pre_feedforward_layernorm.weight": "ffn_norm.weight",
  "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
};
const GLOBAL_NAMES: Readonly<Record<string, string>> = {
  "model.embed_tokens.weight": "token_embd.weight",
  "model.norm.weight": "output_norm.weight",
  "lm_head.weight": "output.weight",
};
const LAYER_PREFIX = /^model\.layers\.(\d+)\.(.+)$/;

/**
 * llama.cpp's name for a Hugging Face weight name; throws for a weight llama.cpp has no name for.
 * `postNorms`: the model norms its blocks' outputs, under Gemma's names (config.ts, hasPostNorms).
 */
export function ggufTensorName(hfName: string, postNorms = false): string {
  const global = GLOBAL_NAMES[hfName];
  if (global) return global;
  const m = LAYER_PREFIX.exec(hfName);
  const local = m ? ((postNorms ? POST_NORM_NAMES[m[2]!] : undefined) ?? LAYER_NAMES[m[2]!]) : undefined;
  if (!m || !local) throw new Error(`no llama.cpp name for weight "${hfName}"`);
  return `blk.${m[1]}.${local}`;
}

/**
 * llama.cpp keeps a layer's experts as one 3-D tensor per projection ([experts, rows, cols]):
 * expert E's gate (Mixtral's w1), up (w3) and down (w2) projections are slice E of
 * ffn_gate_exps, ffn_up_exps and ffn_down_exps (their biases, gpt-oss's, of the same names'
 * .bias). Null for a weight that is not an expert's.
 */
export function ggufExpertSlice(hfName: string): { readonly name: string; readonly expert: number } | null {
  const m = EXPERT_WEIGHT.exec(hfName);
  if (!m) return null;
  // gpt-oss's expert biases stack the same way ([experts, width]).
  return {
    name: `blk.${m[1]}.${EXPERT_STACKS[m[3] as keyof typeof EXPERT_STACKS]}.${m[4]}`,
    expert: Number(m[2]),
  };
}
const EXPERT_WEIGHT =
  /^model\.layers\.(\d+)\.(?:block_sparse_moe|mlp)\.experts\.(\d+)\.(w1|w2|w3|gate_proj|up_proj|down_proj)\.(weight|bias)$/;
const EXPERT_STACKS = {
  w1: "ffn_gate_exps",
  w3: "ffn_up_exps",
  w2: "ffn_down_exps",
  gate_proj: "ffn_gate_exps",
  up_proj: "ffn_up_exps",
  down_proj: "ffn_down_exps",
} as const;

/**
 * Whether the Hugging Face post_attention_layernorm goes by llama.cpp's post_attention_norm
 * (Gemma's and OLMo 2's norm on the attention output, gpt-oss's, GLM-4.5's and Seed-OSS's norm before the FFN)
 * rather than ffn_norm (Llama's, and GLM-4's, whose own names say which norm is which).
 */
export function postAttentionNormNamed(
  c: Pick<ModelConfig, "architecture" | "postNorms" | "postNormsOnly">,
): boolean {
  if (c.architecture === "glm4") return false;
  return (
    hasPostNorms(c) ||
    c.architecture === "gpt_oss" ||
    c.architecture === "glm4_moe" ||
    c.architecture === "seed_oss"
  );
}

/**
 * Whether a weight is an RMSNorm's (Gemma stores those as offsets from 1, llama.cpp as the scale
 * itself): every norm's name ends in "norm.weight", and no other weight's does.
 */
export function isNormWeight(hfName: string): boolean {
  return hfName.endsWith("norm.weight");
}

/**
 * llama.cpp's architectures that store q/k rows in interleaved pairs (its "normal" RoPE): the GGUF
 * writer interleaves them, the loader puts them back in the engine's rotate-half order.
 */
export function interleavesQk(arch: string): boolean {
  return (
    arch === "llama" ||
    arch === "granite" ||
    arch === "granitemoe" ||
    arch === "smollm3" ||
    arch === "ernie4_5" ||
    arch === "ernie4_5-moe" ||
    arch === "glm4"
  );
}

/** llama.cpp's smollm3 leaves RoPE out of every fourth layer (3, 7, ...), with no key to say so. */
export const SMOLLM3_NO_ROPE_STEP = 4;
