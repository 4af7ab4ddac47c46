import { createByteTokenizer } from "../tokenizer/index.js";
import type { ModelConfig } from "./config.js";
import { randomWeights } from "./random-weights.js";
import type { LoadedModel } from "./types.js";

/**
 * The random-weight demo model (`--model random`): a small Llama with grouped-query attention and
 * seeded random bf16 weights, and a byte-level tokenizer. It needs no files at all, which makes it
 * handy for tests and benchmarks; its output is gibberish and its label says so. (The built-in
 * default, `--model demo`, is the trained stories260K: see builtin-model.ts.)
 * ~3.5 M parameters (7 MB in bf16): a decode step is a few million multiply-adds.
 */
export const RANDOM_DEMO_SEED = 0x1a3e1a;

export function randomDemoConfig(vocabSize: number): ModelConfig {
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

export const RANDOM_DEMO_LABEL = "random (built-in model with random weights: output is gibberish)";

export async function loadRandomDemoModel(opts: { readonly weights?: boolean } = {}): Promise<LoadedModel> {
  const tokenizer = createByteTokenizer();
  const config = {
    ...randomDemoConfig(tokenizer.vocabSize),
    bosTokenId: tokenizer.bosTokenId,
    eosTokenIds: tokenizer.eosTokenIds,
  };
  // Embedding std 0.1 with tied embeddings puts logits at std ≈ 1.6: varied text, not one token forever.
  const weights =
    opts.weights === false
      ? new Map()
      : randomWeights(config, { dtype: "bf16", seed: RANDOM_DEMO_SEED, embedStd: 0.1 });
  return {
    config,
    weights,
    embedDtype: "bf16",
    tokenizer,
    generation: {},
    // Kind "demo": the engine gives it the byte tokenizer.
    source: { kind: "demo", path: "random", label: RANDOM_DEMO_LABEL },
  };
}
