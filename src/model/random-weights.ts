import { SeededRandom } from "../util/seeded-random.js";
import type { ModelConfig } from "./config.js";
import { expectedTensors } from "./expected-tensors.js";
import { nearConstantTensor, randomTensor } from "./random-tensors.js";
import type { DType, Tensor } from "./tensor.js";

export interface RandomWeightOptions {
  readonly dtype: DType;
  readonly seed: number;
  /** Standard deviation of the token embeddings. */
  readonly embedStd?: number;
  /** RMSNorm weights are 1 ± this (0: exactly 1); Gemma's, stored as offsets from 1, are 0 ± this. */
  readonly normSpread?: number;
  /** Standard deviation of biases (q/k/v, and ERNIE 4.5's expert selection bias). */
  readonly biasStd?: number;
}

/**
 * Seeded random weights for every tensor a config needs, scaled so activations stay of order 1
 * through any depth: Linear weights have std 1/√fan_in, and the two projections that write into
 * the residual stream (o_proj, down_proj, experts' down projections) are further scaled by 1/√(2·layers), as GPT-2 does.
 */
export function randomWeights(config: ModelConfig, opts: RandomWeightOptions): Map<string, Tensor> {
  const rng = new SeededRandom(opts.seed);
  const residualScale = 1 / Math.sqrt(2 * config.numLayers);
  const out = new Map<string, Tensor>();
  for (const { name, shape } of expectedTensors(config)) {
    let t: Tensor;
    if (name.endsWith("norm.weight")) {
      t = nearConstantTensor(rng, name, opts.dtype, shape, config.normPlusOne ? 0 : 1, opts.normSpread ?? 0);
    } else if (name === "model.embed_tokens.weight") {
      t = randomTensor(rng, name, opts.dtype, shape, opts.embedStd ?? 0.1);
    } else if (name.endsWith(".sinks")) {
      // gpt-oss's sink logits, of the order of the attention scores, so they take a real share.
      t = randomTensor(rng, name, opts.dtype, shape, 1);
    } else if (name.endsWith(".bias") || name.endsWith("_bias")) {
      // ERNIE 4.5's e_score_correction_bias too: a spread near the routing probabilities', so both choose.
      t = randomTensor(rng, name, opts.dtype, shape, opts.biasStd ?? 0.1);
    } else {
      const fanIn = shape[1]!;
      // Mixtral's expert down projections are named w2.
      const residual = ["o_proj.weight", "down_proj.weight", ".w2.weight"].some((s) => name.endsWith(s));
      const scale = residual ? residualScale : 1;
      t = randomTensor(rng, name, opts.dtype, shape, scale / Math.sqrt(fanIn));
    }
    out.set(name, t);
  }
  return out;
}
