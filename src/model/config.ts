/**
 * The architecture-level description of a decoder-only model of the families we run, normalised
 * from whatever the checkpoint called it (Hugging Face config.json, llama2.c header, GGUF, the
 * random-weight demo). Everything downstream (graph, kernels, attention) reads only this.
 */
export type Architecture = "llama" | "mistral" | "qwen2" | "qwen3" | "phi3" | "mixtral" | "qwen3_moe";

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
    };

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
  readonly tieWordEmbeddings: boolean;
  /** Qwen2-style biases on the q/k/v projections. */
  readonly attentionBias: boolean;
  /** Qwen3: an RMSNorm over each head of q and of k (weights [headDim]) before RoPE. Absent: none. */
  readonly qkNorm?: boolean;
  /** Phi-3: q/k/v stored as one qkv_proj and gate/up as one gate_up_proj. Absent: separate. */
  readonly fusedProjections?: boolean;
  /** A mixture of experts in place of the MLP (on the layers it names). Absent: dense everywhere. */
  readonly moe?: MoeConfig;
  /** Mistral's (also Phi-3's, Mixtral's) sliding window, if the checkpoint declares one (attention is limited to it). */
  readonly slidingWindow: number | null;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
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
  if (c.attentionBias) parts.push("q/k/v biases");
  if (c.qkNorm) parts.push("q/k norms");
  if (c.fusedProjections) parts.push("fused qkv and gate/up projections");
  if (c.ropeScaling) parts.push(`${c.ropeScaling.type} RoPE scaling`);
  if (c.slidingWindow !== null) parts.push(`sliding window ${c.slidingWindow}`);
  if (c.moe) {
    const sparse = c.moe.sparseLayers.filter(Boolean).length;
    const norm = c.moe.normalizeTopK ? "renormalised" : "not renormalised";
    parts.push(
      `${c.moe.numExperts} experts (top-${c.moe.topK}, ${norm}) on ${sparse} of ${c.numLayers} layers`,
    );
  }
  return parts.length > 0 ? `${c.architecture}: ${parts.join(", ")}` : c.architecture;
}
