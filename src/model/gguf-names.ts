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
  // Qwen3's per-head RMSNorm of q and k (after the projections, before RoPE).
  "self_attn.q_norm.weight": "attn_q_norm.weight",
  "self_attn.k_norm.weight": "attn_k_norm.weight",
  "post_attention_layernorm.weight": "ffn_norm.weight",
  "mlp.gate_proj.weight": "ffn_gate.weight",
  "mlp.up_proj.weight": "ffn_up.weight",
  "mlp.down_proj.weight": "ffn_down.weight",
};
const GLOBAL_NAMES: Readonly<Record<string, string>> = {
  "model.embed_tokens.weight": "token_embd.weight",
  "model.norm.weight": "output_norm.weight",
  "lm_head.weight": "output.weight",
};
const LAYER_PREFIX = /^model\.layers\.(\d+)\.(.+)$/;

/** llama.cpp's name for a Hugging Face weight name; throws for a weight llama.cpp has no name for. */
export function ggufTensorName(hfName: string): string {
  const global = GLOBAL_NAMES[hfName];
  if (global) return global;
  const m = LAYER_PREFIX.exec(hfName);
  const local = m ? LAYER_NAMES[m[2]!] : undefined;
  if (!m || !local) throw new Error(`no llama.cpp name for weight "${hfName}"`);
  return `blk.${m[1]}.${local}`;
}
