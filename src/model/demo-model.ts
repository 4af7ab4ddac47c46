import { createByteTokenizer } from "../tokenizer/index.js";
import type { ModelConfig } from "./config.js";
import { randomWeights } from "./random-weights.js";
import type { LoadedModel } from "./types.js";

/**
 * The built-in demo model: a small Llama with grouped-query attention and seeded random bf16
 * weights, and a byte-level tokenizer. It exists so that `lamina serve` and `lamina generate`
 * work with no download; its output is gibberish and its label says so.
 * ~3.5 M parameters (7 MB in bf16): a decode step is a few million multiply-adds.
 */
export const DEMO_SEED = 0x1a3e1a;

export function demoConfig(vocabSize: number): ModelConfig {
  return {
    architecture: "llama",
    vocabSize,
    hiddenSize: 256,
    intermediateSize: 768,
    numLayers: 4,
    numHeads: 8,
    numKvHeads: 2,
    headDim: 32,
    maxPositionEmbeddings: 2048,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    tieWordEmbeddings: true,
    attentionBias: false,
    slidingWindow: null,
    bosTokenId: null,
    eosTokenIds: [],
  };
}

export const DEMO_LABEL = "demo (built-in model with random weights: output is gibberish)";

export async function loadDemoModel(): Promise<LoadedModel> {
  const tokenizer = createByteTokenizer();
  const config = {
    ...demoConfig(tokenizer.vocabSize),
    bosTokenId: tokenizer.bosTokenId,
    eosTokenIds: tokenizer.eosTokenIds,
  };
  // Embedding std 0.1 with tied embeddings puts logits at std ≈ 1.6: varied text, not one token forever.
  const weights = randomWeights(config, { dtype: "bf16", seed: DEMO_SEED, embedStd: 0.1 });
  return {
    config,
    weights,
    tokenizer,
    generation: {},
    source: { kind: "demo", path: "demo", label: DEMO_LABEL },
  };
}
