import type { ModelConfig } from "../../src/model/config.js";
import { type ReferenceWeights, referenceSwiglu } from "./reference-forward.js";

/**
 * The float64 mixture of experts, written from the families' definitions for tests and sharing
 * nothing with the engine but weight names. Routing: sort the experts by router logit (ties to
 * the lower index), take the first k; weights are the softmax over all experts of the chosen
 * ones, divided by their sum when the family normalises (Mixtral; Qwen3-MoE's norm_topk_prob).
 */
export function referenceRoute(
  logits: ArrayLike<number>,
  topK: number,
  normalize: boolean,
): { experts: number[]; weights: number[] } {
  const order = Array.from({ length: logits.length }, (_, e) => e).sort(
    (a, b) => logits[b]! - logits[a]! || a - b,
  );
  const experts = order.slice(0, topK);
  const m = logits[order[0]!]!;
  const all = Array.from(logits, (v) => Math.exp(v - m));
  const z = all.reduce((a, v) => a + v, 0);
  let weights = experts.map((e) => all[e]! / z);
  if (normalize) {
    const s = weights.reduce((a, v) => a + v, 0);
    weights = weights.map((w) => w / s);
  }
  return { experts, weights };
}

/** Expert weight names of layer l, as each family's checkpoints spell them. */
function expertWeight(c: ModelConfig, l: number, e: number, part: "gate" | "up" | "down"): string {
  if (c.architecture === "mixtral") {
    const w = { gate: "w1", up: "w3", down: "w2" }[part];
    return `model.layers.${l}.block_sparse_moe.experts.${e}.${w}.weight`;
  }
  return `model.layers.${l}.mlp.experts.${e}.${part}_proj.weight`;
}

function routerWeight(c: ModelConfig, l: number): string {
  return c.architecture === "mixtral"
    ? `model.layers.${l}.block_sparse_moe.gate.weight`
    : `model.layers.${l}.mlp.gate.weight`;
}

export function referenceMoe(c: ModelConfig, rw: ReferenceWeights, l: number, y: Float64Array): Float64Array {
  const moe = c.moe!;
  const { experts, weights } = referenceRoute(rw.linear(y, routerWeight(c, l)), moe.topK, moe.normalizeTopK);
  const out = new Float64Array(c.hiddenSize);
  experts.forEach((e, j) => {
    const d = referenceSwiglu(
      rw,
      y,
      expertWeight(c, l, e, "gate"),
      expertWeight(c, l, e, "up"),
      expertWeight(c, l, e, "down"),
    );
    for (let i = 0; i < out.length; i++) out[i] = out[i]! + weights[j]! * d[i]!;
  });
  return out;
}
