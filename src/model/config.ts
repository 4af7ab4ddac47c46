/**
 * The architecture-level description of a decoder-only model of the families we run, normalised
 * from whatever the checkpoint called it (Hugging Face config.json, llama2.c header, GGUF, the
 * random-weight demo). Everything downstream (graph, kernels, attention) reads only this.
 */
export type Architecture =
  | "llama"
  | "mistral"
  | "qwen2"
  | "qwen3"
  | "phi3"
  | "mixtral"
  | "qwen3_moe"
  | "gemma"
  | "gemma2"
  | "gemma3_text"
  | "granite"
  | "smollm3"
  | "olmo2"
  | "olmo3"
  | "olmoe"
  | "ernie4_5"
  | "ernie4_5_moe"
  | "gpt_oss"
  | "glm4"
  | "qwen2_moe"
  | "glm4_moe"
  | "seed_oss"
  | "exaone4";

export type RopeScaling =
  | {
      readonly type: "llama3";
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    }
  | { readonly type: "linear"; readonly factor: number }
  | {
      /**
       * Phi-3's LongRoPE: per-frequency divisors, `shortFactor` for positions below
       * `originalMaxPositionEmbeddings` and `longFactor` from there on, and cos/sin scaled by
       * `attentionFactor` at every position.
       */
      readonly type: "longrope";
      readonly shortFactor: readonly number[];
      readonly longFactor: readonly number[];
      readonly originalMaxPositionEmbeddings: number;
      readonly attentionFactor: number;
    }
  | {
      /**
       * YaRN (Qwen2.5/Qwen3 long context, and others): each frequency blends its original value
       * (extrapolation) with the value divided by `factor` (interpolation) by a linear ramp over
       * the frequency index between the dims that turn `betaFast` and `betaSlow` times over
       * `originalMaxPositionEmbeddings` (floored and ceiled where `truncate`), and cos/sin are
       * scaled by `attentionFactor` at every position.
       */
      readonly type: "yarn";
      readonly factor: number;
      readonly originalMaxPositionEmbeddings: number;
      readonly betaFast: number;
      readonly betaSlow: number;
      readonly attentionFactor: number;
      readonly truncate: boolean;
    };

/** YaRN's default magnitude for a context scaled by `factor`: 0.1 · m · ln(factor) + 1 (1 for no scaling). */
export function yarnMscale(factor: number, m = 1): number {
  return factor <= 1 ? 1 : 0.1 * m * Math.log(factor) + 1;
}

/** A mixture-of-experts FFN (Mixtral, Qwen3-MoE): each token runs its top-k experts' SwiGLU MLPs. */
export interface MoeConfig {
  readonly numExperts: number;
  readonly topK: number;
  /** Rows of each expert's gate and up projections. */
  readonly expertIntermediateSize: number;
  /**
   * Whether the chosen experts' softmax probabilities are rescaled to sum to 1 (Mixtral always;
   * Qwen3-MoE's norm_topk_prob). Without it they keep their share of the softmax over all experts.
   */
  readonly normalizeTopK: boolean;
  /** Per layer: true where the FFN is the mixture, false where it is the dense MLP (Qwen3-MoE's mlp_only_layers, decoder_sparse_step). */
  readonly sparseLayers: readonly boolean[];
  /**
   * ERNIE 4.5's (DeepSeek V3's kind of) routing: each token's experts are the top-k of its softmax
   * probabilities plus a per-expert bias (a weight, [1, experts]); the weights stay the
   * probabilities. Absent: the top-k of the router logits.
   */
  readonly selectionBias?: boolean;
  /**
   * DeepSeek V3's kind of routing (GLM-4.5): an expert's score is the sigmoid of its router logit
   * (not a softmax probability); the experts are the top-k of score + selection bias, weighted
   * by their scores (renormalised with normalizeTopK). Absent: softmax.
   */
  readonly sigmoidScores?: boolean;
  /** Multiplies the routed experts' weights (routed_scaling_factor: GLM-4.5's 2.5). Absent: 1. */
  readonly routedScale?: number;
  /** Rows of a shared expert's gate and up projections: a SwiGLU MLP every token runs, added to the mixture. Absent: none. */
  readonly sharedExpertSize?: number;
  /**
   * Qwen2-MoE: the shared expert's output is scaled by sigmoid(shared_expert_gate · x) (a [1,
   * hidden] weight) before it joins the mixture. Absent: added as it is (ERNIE 4.5).
   */
  readonly sharedExpertGate?: boolean;
  /** gpt-oss: the router carries a bias ([experts]) added to its logits. Absent: none. */
  readonly routerBias?: boolean;
  /** gpt-oss: every expert's gate, up and down projections carry biases. Absent: none. */
  readonly expertBias?: boolean;
  /**
   * gpt-oss's clamped SwiGLU in place of silu(gate)·up: gate clamped above at `limit`, up to
   * ±limit, then (up + 1) · gate · σ(alpha · gate). Absent: SwiGLU.
   */
  readonly swigluClamp?: { readonly alpha: number; readonly limit: number };
}

export interface ModelConfig {
  readonly architecture: Architecture;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly maxPositionEmbeddings: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling | null;
  /**
   * Partial rotary embeddings (Phi-4-mini: partial_rotary_factor · headDim): RoPE rotates the first
   * rotaryDim dims of each head, paired within them, and the rest pass through. Absent: headDim.
   */
  readonly rotaryDim?: number;
  readonly tieWordEmbeddings: boolean;
  /** Qwen2-style biases on the q/k/v projections. */
  readonly attentionBias: boolean;
  /** gpt-oss: a bias on o_proj too. Absent: none. */
  readonly outputBias?: boolean;
  /**
   * gpt-oss: attention sinks, a learned logit per query head (`self_attn.sinks`, [numHeads]) that
   * joins each softmax as a key whose value is zero. Absent: none.
   */
  readonly attnSinks?: boolean;
  /** Qwen3: an RMSNorm over each head of q and of k (weights [headDim]) before RoPE. Absent: none. */
  readonly qkNorm?: boolean;
  /**
   * OLMo 2: `qkNorm` over the whole q and k projections (weights [heads·headDim], one statistic a
   * token) rather than over each head. Absent: per head.
   */
  readonly qkNormFull?: boolean;
  /** Phi-3: q/k/v stored as one qkv_proj and gate/up as one gate_up_proj. Absent: separate. */
  readonly fusedProjections?: boolean;
  /** GLM-4: gate/up stored as one gate_up_proj (gate rows first), q/k/v apart. Absent: as fusedProjections says. */
  readonly fusedGateUp?: boolean;
  /** A mixture of experts in place of the MLP (on the layers it names). Absent: dense everywhere. */
  readonly moe?: MoeConfig;
  /** Mistral's (also Phi-3's, Mixtral's, Gemma's) sliding window, if the checkpoint declares one (attention is limited to it). */
  readonly slidingWindow: number | null;
  /**
   * Per layer, whether `slidingWindow` applies there (Gemma interleaves window layers with global
   * ones). Absent: on every layer.
   */
  readonly slidingLayers?: readonly boolean[];
  /** Gemma: the checkpoint's RMSNorm weights are offsets, the norm scales by (1 + weight). */
  readonly normPlusOne?: boolean;
  /** Gemma: token embeddings times √hidden_size (rounded to the embedding's dtype, as transformers does). */
  readonly embedScale?: boolean;
  /**
   * GGUF Gemma: the √hidden_size scale is applied in f32, as llama.cpp does, not rounded to the
   * embedding's dtype (a bf16 table at hidden 3584 would otherwise scale 0.2% differently).
   */
  readonly embedScaleExact?: boolean;
  /** Gemma: RMSNorms on the attention output and the FFN output too, before each joins the residual stream. */
  readonly postNorms?: boolean;
  /**
   * OLMo 2: RMSNorms on the attention output and the FFN output only (post_attention_layernorm,
   * post_feedforward_layernorm), none on the blocks' inputs. Absent: pre-norms.
   */
  readonly postNormsOnly?: boolean;
  /** The FFN's gate activation: SiLU (SwiGLU) or Gemma's tanh-approximated GELU (GeGLU). Absent: silu. */
  readonly activation?: "silu" | "gelu_tanh";
  /** Attention's softmax scale; absent: 1/√headDim (Gemma: query_pre_attn_scalar^-½). */
  readonly attentionScale?: number;
  /** Gemma 2: attention scores become cap·tanh(score / cap) before the softmax. Absent: none. */
  readonly attnSoftcap?: number;
  /** Gemma 2: logits become cap·tanh(logit / cap). Absent: none. */
  readonly finalSoftcap?: number;
  /** Gemma 3: the window layers' RoPE base (without rope scaling); the global layers keep ropeTheta and ropeScaling. */
  readonly localRopeTheta?: number;
  /**
   * SmolLM3: per layer, whether q and k are rotated (its no_rope_layers; every fourth layer attends
   * without positions). Absent: every layer.
   */
  readonly ropeLayers?: readonly boolean[];
  /** Granite: token embeddings times this (embedding_multiplier, applied in f32). Absent: none. */
  readonly embedMultiplier?: number;
  /** Granite: each block's output (attention, FFN) times this before it joins the residual stream. Absent: none. */
  readonly residualMultiplier?: number;
  /** Granite: logits divided by this (logits_scaling). Absent: none. */
  readonly logitsDivisor?: number;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
}

/** Whether gate and up are one gate_up_proj (Phi-3's fused projections, GLM-4's fused gate/up). */
export function hasFusedGateUp(c: Pick<ModelConfig, "fusedProjections" | "fusedGateUp">): boolean {
  return c.fusedProjections === true || c.fusedGateUp === true;
}

/** Whether the model's layers carry norms after their blocks, under Gemma's names (GGUF: post_attention_norm, post_ffw_norm). */
export function hasPostNorms(c: Pick<ModelConfig, "postNorms" | "postNormsOnly">): boolean {
  return c.postNorms === true || c.postNormsOnly === true;
}

/**
 * `ropeLayers` from a rotate-or-not flag per layer: absent where every layer rotates, so a model
 * without no-RoPE layers compares equal however it was read.
 */
export function ropeLayersOf(rope: readonly boolean[]): Pick<ModelConfig, "ropeLayers"> {
  return rope.every(Boolean) ? {} : { ropeLayers: rope };
}

/** SmolLM3's placement: layers l with (l + 1) a multiple of `interval` attend without RoPE. */
export function ropeLayersEvery(numLayers: number, interval: number): Pick<ModelConfig, "ropeLayers"> {
  return ropeLayersOf(Array.from({ length: numLayers }, (_, l) => (l + 1) % interval !== 0));
}

/** The layers that attend without RoPE, in order. */
export function noRopeLayers(c: Pick<ModelConfig, "ropeLayers">): number[] {
  return (c.ropeLayers ?? []).flatMap((r, l) => (r ? [] : [l]));
}

/** OLMo 2's norms: after each block only, q and k normed over their whole projections. */
export const OLMO2_NORMS = { qkNorm: true, qkNormFull: true, postNormsOnly: true } as const;

/** Whether layer `l` rotates its q and k (all but SmolLM3's no-RoPE layers). */
export function ropeOnLayer(c: Pick<ModelConfig, "ropeLayers">, l: number): boolean {
  return c.ropeLayers === undefined || c.ropeLayers[l] === true;
}

/** Whether layer `l` attends within the sliding window only. */
export function isWindowLayer(c: Pick<ModelConfig, "slidingWindow" | "slidingLayers">, l: number): boolean {
  return c.slidingWindow !== null && (c.slidingLayers === undefined || c.slidingLayers[l] === true);
}

/** GQA group size G: query heads per KV head. */
export function gqaGroup(c: ModelConfig): number {
  return c.numHeads / c.numKvHeads;
}

/**
 * One line naming the family and what sets its graph apart, e.g.
 * "qwen3_moe: q/k norms, 128 experts (top-8, renormalised) on 48 of 48 layers".
 */
export function describeFamily(c: ModelConfig): string {
  const parts: string[] = [];
  if (c.attentionBias) parts.push(c.outputBias ? "q/k/v/o biases" : "q/k/v biases");
  if (c.attnSinks) parts.push("attention sinks");
  if (c.qkNorm) parts.push(c.qkNormFull ? "q/k norms over the whole projections" : "q/k norms");
  if (c.fusedProjections) parts.push("fused qkv and gate/up projections");
  if (c.fusedGateUp) parts.push("fused gate/up projection");
  if (c.ropeScaling) parts.push(`${c.ropeScaling.type} RoPE scaling`);
  if (c.rotaryDim !== undefined) parts.push(`RoPE on ${c.rotaryDim} of ${c.headDim} dims a head`);
  if (c.normPlusOne) parts.push("(1 + w) RMSNorm");
  if (c.embedScale) parts.push("embeddings × √hidden");
  if (c.postNorms) parts.push("post-attention and post-FFN norms");
  if (c.postNormsOnly) parts.push("norms after each block only");
  if (c.activation === "gelu_tanh") parts.push("GeGLU (tanh GELU)");
  if (c.attentionScale !== undefined) parts.push(`attention scale ${c.attentionScale.toPrecision(4)}`);
  if (c.attnSoftcap !== undefined) parts.push(`attention soft-cap ${c.attnSoftcap}`);
  if (c.finalSoftcap !== undefined) parts.push(`final soft-cap ${c.finalSoftcap}`);
  if (c.slidingWindow !== null) {
    const n = c.slidingLayers?.filter(Boolean).length ?? c.numLayers;
    parts.push(
      `sliding window ${c.slidingWindow}${c.slidingLayers ? ` on ${n} of ${c.numLayers} layers` : ""}`,
    );
  }
  if (c.localRopeTheta !== undefined) parts.push(`window layers' RoPE base ${c.localRopeTheta}`);
  if (c.ropeLayers) {
    const nope = noRopeLayers(c);
    parts.push(`no RoPE on layer${nope.length === 1 ? "" : "s"} ${nope.join(", ")} of ${c.numLayers}`);
  }
  if (c.embedMultiplier !== undefined) parts.push(`embeddings × ${c.embedMultiplier}`);
  if (c.residualMultiplier !== undefined) parts.push(`block outputs × ${c.residualMultiplier}`);
  if (c.logitsDivisor !== undefined) parts.push(`logits ÷ ${c.logitsDivisor}`);
  if (c.moe) {
    const sparse = c.moe.sparseLayers.filter(Boolean).length;
    const norm = c.moe.normalizeTopK ? "renormalised" : "not renormalised";
    parts.push(
      `${c.moe.numExperts} experts (top-${c.moe.topK}, ${norm}) on ${sparse} of ${c.numLayers} layers`,
    );
    if (c.moe.sigmoidScores) parts.push("sigmoid expert scores");
    if (c.moe.selectionBias) parts.push("experts chosen with a per-expert bias");
    if (c.moe.routedScale !== undefined) parts.push(`routed experts × ${c.moe.routedScale}`);
    if (c.moe.sharedExpertSize)
      parts.push(
        `a shared expert ${c.moe.sharedExpertSize} wide${c.moe.sharedExpertGate ? ", sigmoid-gated" : ""}`,
      );
    if (c.moe.routerBias || c.moe.expertBias) parts.push("router and expert biases");
    const clamp = c.moe.swigluClamp;
    if (clamp) parts.push(`SwiGLU clamped at ${clamp.limit} (alpha ${clamp.alpha})`);
  }
  return parts.length > 0 ? `${c.architecture}: ${parts.join(", ")}` : c.architecture;
}
