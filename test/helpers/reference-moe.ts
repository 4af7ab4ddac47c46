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

/**
 * ERNIE 4.5's routing (transformers' Ernie4_5_MoeTopKRouter): softmax over all experts; the k
 * largest of probability + bias (the correction bias, for choosing only; ties to the lower index);
 * their probabilities divided by their sum.
 */
export function referenceBiasedRoute(
  logits: ArrayLike<number>,
  bias: ArrayLike<number>,
  topK: number,
): { experts: number[]; weights: number[] } {
  const m = Math.max(...Array.from(logits));
  const e = Array.from(logits, (v) => Math.exp(v - m));
  const z = e.reduce((a, v) => a + v, 0);
  const p = e.map((v) => v / z);
  const experts = p
    .map((_, i) => i)
    .sort((a, b) => p[b]! + bias[b]! - (p[a]! + bias[a]!) || a - b)
    .slice(0, topK);
  const s = experts.reduce((a, i) => a + p[i]!, 0);
  return { experts, weights: experts.map((i) => p[i]! / s) };
}

/**
 * GLM-4.5's routing (DeepSeek V3's, transformers' DeepseekV3TopkRouter with one group): each
 * expert's score the sigmoid of its logit; the k largest of score + correction bias chosen (ties to
 * the lower index); their scores divided by their sum when normalising, times the scaling factor.
 */
export function referenceSigmoidRoute(
  logits: ArrayLike<number>,
  bias: ArrayLike<number>,
  topK: number,
  normalize: boolean,
  scale: number,
): { experts: number[]; weights: number[] } {
  const score = Array.from(logits, (v) => 1 / (1 + Math.exp(-v)));
  const experts = score
    .map((_, i) => i)
    .sort((a, b) => score[b]! + bias[b]! - (score[a]! + bias[a]!) || a - b)
    .slice(0, topK);
  const s = normalize ? experts.reduce((a, i) => a + score[i]!, 0) : 1;
  return { experts, weights: experts.map((i) => (score[i]! / s) * scale) };
}

/**
 * gpt-oss's mixture (transformers' GptOssTopKRouter and GptOssExperts): router logits with their
 * bias, the top k by logit, weighted by the softmax over those k; each expert
 * down((clamp(up·y + b, ±limit) + 1) · g · σ(alpha · g)) + b with g = min(gate·y + b, limit).
 */
function referenceGptOssMoe(c: ModelConfig, rw: ReferenceWeights, l: number, y: Float64Array): Float64Array {
  const moe = c.moe!;
  const { alpha, limit } = moe.swigluClamp!;
  const p = `model.layers.${l}.mlp`;
  const logits = rw.linear(y, `${p}.router.weight`, `${p}.router.bias`);
  const experts = Array.from(logits, (_, e) => e)
    .sort((a, b) => logits[b]! - logits[a]! || a - b)
    .slice(0, moe.topK);
  const m = logits[experts[0]!]!;
  const ex = experts.map((e) => Math.exp(logits[e]! - m));
  const z = ex.reduce((a, v) => a + v, 0);
  const out = new Float64Array(c.hiddenSize);
  experts.forEach((e, j) => {
    const w = (proj: string, what: string) => `${p}.experts.${e}.${proj}.${what}`;
    const g = rw.linear(y, w("gate_proj", "weight"), w("gate_proj", "bias")).map((v) => Math.min(v, limit));
    const u = rw.linear(y, w("up_proj", "weight"), w("up_proj", "bias"));
    const act = g.map(
      (v, i) => (Math.min(Math.max(u[i]!, -limit), limit) + 1) * (v / (1 + Math.exp(-alpha * v))),
    );
    const d = rw.linear(act, w("down_proj", "weight"), w("down_proj", "bias"));
    for (let i = 0; i < out.length; i++) out[i] = out[i]! + (ex[j]! / z) * d[i]!;
  });
  return out;
}

export function referenceMoe(c: ModelConfig, rw: ReferenceWeights, l: number, y: Float64Array): Float64Array {
  const moe = c.moe!;
  if (c.architecture === "gpt_oss") return referenceGptOssMoe(c, rw, l, y);
  const logits = rw.linear(y, routerWeight(c, l));
  const p = `model.layers.${l}.mlp`;
  const { experts, weights } =
    c.architecture === "glm4_moe"
      ? referenceSigmoidRoute(
          logits,
          rw.vec(`${p}.gate.e_score_correction_bias`),
          moe.topK,
          moe.normalizeTopK,
          moe.routedScale ?? 1,
        )
      : moe.selectionBias
        ? referenceBiasedRoute(logits, rw.vec(`${p}.moe_statics.e_score_correction_bias`), moe.topK)
        : referenceRoute(logits, moe.topK, moe.normalizeTopK);
  // ERNIE 4.5's shared expert: a SwiGLU MLP every token runs, added to the mixture; Qwen2-MoE's
  // (mlp.shared_expert) times sigmoid(shared_expert_gate · y).
  const s = c.architecture === "qwen2_moe" ? `${p}.shared_expert` : `${p}.shared_experts`;
  const out = moe.sharedExpertSize
    ? referenceSwiglu(rw, y, `${s}.gate_proj.weight`, `${s}.up_proj.weight`, `${s}.down_proj.weight`)
    : new Float64Array(c.hiddenSize);
  if (moe.sharedExpertGate) {
    const g = 1 / (1 + Math.exp(-rw.linear(y, `${p}.shared_expert_gate.weight`)[0]!));
    for (let i = 0; i < out.length; i++) out[i] = out[i]! * g;
  }
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
