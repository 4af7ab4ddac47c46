/**
 * The architecture-level description of a Llama-family model, normalised from whatever the
 * checkpoint called it (Hugging Face config.json, llama2.c header, the random-weight demo).
 * Everything downstream (graph, kernels, attention) reads only this.
 */
export type Architecture = "llama" | "mistral" | "qwen2";

export type RopeScaling =
  | {
      readonly type: "llama3";
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    }
  | { readonly type: "linear"; readonly factor: number };

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
  /** Mistral's sliding window, if the checkpoint declares one (attention is limited to it). */
  readonly slidingWindow: number | null;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
}

/** GQA group size G: query heads per KV head. */
export function gqaGroup(c: ModelConfig): number {
  return c.numHeads / c.numKvHeads;
}
