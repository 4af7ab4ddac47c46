import type { ModelConfig } from "./config.js";

/**
 * Hugging Face names of a layer's weights, by family: the one table the graph builder and the
 * expected-tensor list both read, so a family's naming cannot drift between loading and running.
 */

export function layerPrefix(l: number): string {
  return `model.layers.${l}`;
}

/**
 * The RMSNorms of layer `l`. Llama-style layers have two (before attention, before the FFN);
 * Gemma's have four, and there `post_attention_layernorm` is the norm on the attention output,
 * with `pre_feedforward_layernorm` before the FFN. GLM-4's four: `post_self_attn_layernorm` on the
 * attention output, `post_attention_layernorm` before the FFN, `post_mlp_layernorm` after it.
 */
export function layerNormNames(l: number, c?: Pick<ModelConfig, "architecture">) {
  const p = layerPrefix(l);
  if (c?.architecture === "glm4")
    return {
      input: `${p}.input_layernorm.weight`,
      postAttention: `${p}.post_self_attn_layernorm.weight`,
      preFeedforward: `${p}.post_attention_layernorm.weight`,
      postFeedforward: `${p}.post_mlp_layernorm.weight`,
    };
  return {
    input: `${p}.input_layernorm.weight`,
    postAttention: `${p}.post_attention_layernorm.weight`,
    preFeedforward: `${p}.pre_feedforward_layernorm.weight`,
    postFeedforward: `${p}.post_feedforward_layernorm.weight`,
  };
}

/** Attention projections and norms of layer `l`. Phi-3 stores q/k/v as one `qkv_proj`. */
export function attentionNames(l: number) {
  const p = `${layerPrefix(l)}.self_attn`;
  return {
    q: `${p}.q_proj.weight`,
    k: `${p}.k_proj.weight`,
    v: `${p}.v_proj.weight`,
    qkv: `${p}.qkv_proj.weight`,
    o: `${p}.o_proj.weight`,
    bias: (proj: "q_proj" | "k_proj" | "v_proj") => `${p}.${proj}.bias`,
    qNorm: `${p}.q_norm.weight`,
    kNorm: `${p}.k_norm.weight`,
    oBias: `${p}.o_proj.bias`,
    sinks: `${p}.sinks`,
  };
}

/**
 * Weights the attention side is configured with rather than the model side's graph: gpt-oss's
 * sinks. A front end whose model workers hold the weights reads only these.
 */
export function isAttentionSideWeight(name: string): boolean {
  return /^model\.layers\.\d+\.self_attn\.sinks$/.test(name);
}

/** The dense SwiGLU MLP of layer `l`. Phi-3 stores gate and up as one `gate_up_proj` (gate rows first). */
export function mlpNames(l: number) {
  const p = `${layerPrefix(l)}.mlp`;
  return {
    gate: `${p}.gate_proj.weight`,
    up: `${p}.up_proj.weight`,
    down: `${p}.down_proj.weight`,
    gateUp: `${p}.gate_up_proj.weight`,
  };
}

export interface ExpertNames {
  readonly router: string;
  readonly gate: readonly string[];
  readonly up: readonly string[];
  readonly down: readonly string[];
  /** ERNIE 4.5's per-expert selection bias ([1, experts]), where the config has one. */
  readonly selectionBias?: string;
  /** gpt-oss's router bias ([experts]), where the config has one. */
  readonly routerBias?: string;
  /** gpt-oss's per-expert biases: gate and up [expert width], down [hidden], where the config has them. */
  readonly biases?: {
    readonly gate: readonly string[];
    readonly up: readonly string[];
    readonly down: readonly string[];
  };
  /** The shared expert's SwiGLU MLP, where the config has one. */
  readonly shared?: { readonly gate: string; readonly up: string; readonly down: string };
  /** Qwen2-MoE's gate on the shared expert ([1, hidden]), where the config has one. */
  readonly sharedGate?: string;
}

/**
 * The router and experts of a mixture-of-experts layer. Mixtral names them
 * `block_sparse_moe.gate` and `experts.E.w1` (gate) / `w3` (up) / `w2` (down); Qwen3-MoE and
 * ERNIE 4.5 `mlp.gate` and `mlp.experts.E.{gate,up,down}_proj`, ERNIE's selection bias
 * `mlp.moe_statics.e_score_correction_bias` and shared expert `mlp.shared_experts.*`.
 */
export function expertNames(c: ModelConfig, l: number): ExpertNames {
  if (!c.moe) throw new Error(`${c.architecture}: layer ${l} has no mixture of experts`);
  const ids = Array.from({ length: c.moe.numExperts }, (_, e) => e);
  // Granite's experts (GGUF's granitemoe) take Mixtral's names: the engine never reads them from a
  // Hugging Face directory, whose GraniteMoE stacks them per projection.
  if (c.architecture === "mixtral" || c.architecture === "granite") {
    const p = `${layerPrefix(l)}.block_sparse_moe`;
    return {
      router: `${p}.gate.weight`,
      gate: ids.map((e) => `${p}.experts.${e}.w1.weight`),
      up: ids.map((e) => `${p}.experts.${e}.w3.weight`),
      down: ids.map((e) => `${p}.experts.${e}.w2.weight`),
    };
  }
  if (
    c.architecture === "qwen3_moe" ||
    c.architecture === "ernie4_5_moe" ||
    c.architecture === "olmoe" ||
    c.architecture === "qwen2_moe" ||
    c.architecture === "glm4_moe"
  ) {
    const p = `${layerPrefix(l)}.mlp`;
    // Qwen2-MoE's shared expert is singular (mlp.shared_expert), with its sigmoid gate beside it.
    const s = c.architecture === "qwen2_moe" ? `${p}.shared_expert` : `${p}.shared_experts`;
    return {
      router: `${p}.gate.weight`,
      gate: ids.map((e) => `${p}.experts.${e}.gate_proj.weight`),
      up: ids.map((e) => `${p}.experts.${e}.up_proj.weight`),
      down: ids.map((e) => `${p}.experts.${e}.down_proj.weight`),
      // GLM-4.5 keeps its selection bias beside the router (DeepSeek V3's name), ERNIE in moe_statics.
      ...(c.moe.selectionBias
        ? {
            selectionBias:
              c.architecture === "glm4_moe"
                ? `${p}.gate.e_score_correction_bias`
                : `${p}.moe_statics.e_score_correction_bias`,
          }
        : {}),
      ...(c.moe.sharedExpertSize
        ? {
            shared: {
              gate: `${s}.gate_proj.weight`,
              up: `${s}.up_proj.weight`,
              down: `${s}.down_proj.weight`,
            },
          }
        : {}),
      ...(c.moe.sharedExpertGate ? { sharedGate: `${p}.shared_expert_gate.weight` } : {}),
    };
  }
  if (c.architecture === "gpt_oss") {
    // The checkpoint stacks each projection's experts (gate and up interleaved in one gate_up_proj);
    // the loader splits them into these per-expert names (gpt-oss-experts.ts).
    const p = `${layerPrefix(l)}.mlp`;
    const per = (proj: string, what: string) => ids.map((e) => `${p}.experts.${e}.${proj}.${what}`);
    return {
      router: `${p}.router.weight`,
      gate: per("gate_proj", "weight"),
      up: per("up_proj", "weight"),
      down: per("down_proj", "weight"),
      ...(c.moe.routerBias ? { routerBias: `${p}.router.bias` } : {}),
      ...(c.moe.expertBias
        ? {
            biases: {
              gate: per("gate_proj", "bias"),
              up: per("up_proj", "bias"),
              down: per("down_proj", "bias"),
            },
          }
        : {}),
    };
  }
  throw new Error(`${c.architecture}: no expert weight naming for this family`);
}

/** Whether layer `l`'s FFN is the mixture of experts (else the dense MLP). */
export function isSparseLayer(c: ModelConfig, l: number): boolean {
  return c.moe?.sparseLayers[l] === true;
}
