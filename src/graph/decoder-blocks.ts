import { hasFusedGateUp, isWindowLayer, type ModelConfig, ropeOnLayer } from "../model/config.js";
import { attentionNames, expertNames, mlpNames } from "../model/weight-names.js";
import type { GraphBuilder } from "./graph-builder.js";

/**
 * The parts of a decoder layer where the families differ, each written as ops on a GraphBuilder.
 * Every function takes the layer's normed input and returns the tensor it produced.
 */

/**
 * Self-attention up to the attention output (before o_proj): q/k/v from three projections, or
 * one fused qkv_proj split by columns (Phi-3); the per-head RMSNorm on q and k (Qwen3, Gemma 3);
 * RoPE, with the window layers' own base where the family has one (Gemma 3).
 */
export function attentionBlock(g: GraphBuilder, c: ModelConfig, l: number, x: string): string {
  const n = attentionNames(l);
  const qWidth = c.numHeads * c.headDim;
  const kvWidth = c.numKvHeads * c.headDim;
  let qRaw: string;
  let kRaw: string;
  let v: string;
  if (c.fusedProjections) {
    const qkv = g.emit(`L${l}.qkv`, qWidth + 2 * kvWidth, (out) => ({
      kind: "linear",
      out,
      x,
      weight: n.qkv,
    }));
    qRaw = g.emit(`L${l}.q_raw`, qWidth, (out) => ({ kind: "split", out, x: qkv, offset: 0 }));
    kRaw = g.emit(`L${l}.k_raw`, kvWidth, (out) => ({ kind: "split", out, x: qkv, offset: qWidth }));
    v = g.emit(`L${l}.v`, kvWidth, (out) => ({ kind: "split", out, x: qkv, offset: qWidth + kvWidth }));
  } else {
    const bias = (proj: "q_proj" | "k_proj" | "v_proj") => (c.attentionBias ? { bias: n.bias(proj) } : {});
    qRaw = g.emit(`L${l}.q_raw`, qWidth, (out) => ({
      kind: "linear",
      out,
      x,
      weight: n.q,
      ...bias("q_proj"),
    }));
    kRaw = g.emit(`L${l}.k_raw`, kvWidth, (out) => ({
      kind: "linear",
      out,
      x,
      weight: n.k,
      ...bias("k_proj"),
    }));
    v = g.emit(`L${l}.v`, kvWidth, (out) => ({ kind: "linear", out, x, weight: n.v, ...bias("v_proj") }));
  }
  if (c.qkNorm) {
    const eps = c.rmsNormEps;
    const qIn = qRaw;
    const kIn = kRaw;
    qRaw = g.emit(`L${l}.q_normed`, qWidth, (out) => ({
      kind: "rmsnorm",
      out,
      x: qIn,
      weight: n.qNorm,
      eps,
      ...(c.qkNormFull ? {} : { heads: c.numHeads }),
      ...plusOne(c),
    }));
    kRaw = g.emit(`L${l}.k_normed`, kvWidth, (out) => ({
      kind: "rmsnorm",
      out,
      x: kIn,
      weight: n.kNorm,
      eps,
      ...(c.qkNormFull ? {} : { heads: c.numKvHeads }),
      ...plusOne(c),
    }));
  }
  // SmolLM3's no-RoPE layers attend with q and k as projected.
  if (!ropeOnLayer(c, l))
    return g.emit(`L${l}.attn`, qWidth, (out) => ({ kind: "attention", layer: l, q: qRaw, k: kRaw, v, out }));
  const qIn = qRaw;
  const kIn = kRaw;
  const local = c.localRopeTheta !== undefined && isWindowLayer(c, l) ? { local: true } : {};
  const q = g.emit(`L${l}.q`, qWidth, (out) => ({ kind: "rope", out, x: qIn, heads: c.numHeads, ...local }));
  const k = g.emit(`L${l}.k`, kvWidth, (out) => ({
    kind: "rope",
    out,
    x: kIn,
    heads: c.numKvHeads,
    ...local,
  }));
  return g.emit(`L${l}.attn`, qWidth, (out) => ({ kind: "attention", layer: l, q, k, v, out }));
}

/** Gemma's norms scale by (1 + weight). */
export function plusOne(c: ModelConfig): { plusOne?: true } {
  return c.normPlusOne ? { plusOne: true } : {};
}

/**
 * The dense gated MLP, SwiGLU (GeGLU with the tanh GELU for Gemma): gate and up from two
 * projections, or one gate_up_proj split by columns (Phi-3, GLM-4).
 */
export function mlpBlock(g: GraphBuilder, c: ModelConfig, l: number, y: string): string {
  const n = mlpNames(l);
  const width = c.intermediateSize;
  const kind = c.activation === "gelu_tanh" ? "gelu_mul" : "silu_mul";
  if (!hasFusedGateUp(c)) return gatedMlp(g, `L${l}.`, y, n, width, c.hiddenSize, kind);
  const both = g.emit(`L${l}.gate_up`, 2 * width, (out) => ({ kind: "linear", out, x: y, weight: n.gateUp }));
  const gate = g.emit(`L${l}.gate`, width, (out) => ({ kind: "split", out, x: both, offset: 0 }));
  const up = g.emit(`L${l}.up`, width, (out) => ({ kind: "split", out, x: both, offset: width }));
  const act = g.emit(`L${l}.act`, width, (out) => ({ kind, out, gate, up }));
  return g.emit(`L${l}.down`, c.hiddenSize, (out) => ({ kind: "linear", out, x: act, weight: n.down }));
}

/**
 * A gated MLP from separate gate, up and down weights, its tensors named `prefix` + gate, up, act
 * and down: the dense MLP's (prefix `L{l}.`) and ERNIE 4.5's shared expert's (`L{l}.shared_`).
 */
function gatedMlp(
  g: GraphBuilder,
  prefix: string,
  y: string,
  w: { readonly gate: string; readonly up: string; readonly down: string },
  width: number,
  d: number,
  kind: "silu_mul" | "gelu_mul",
): string {
  const gate = g.emit(`${prefix}gate`, width, (out) => ({ kind: "linear", out, x: y, weight: w.gate }));
  const up = g.emit(`${prefix}up`, width, (out) => ({ kind: "linear", out, x: y, weight: w.up }));
  const act = g.emit(`${prefix}act`, width, (out) => ({ kind, out, gate, up }));
  return g.emit(`${prefix}down`, d, (out) => ({ kind: "linear", out, x: act, weight: w.down }));
}

/**
 * A mixture of experts: router logits, then the routed experts' SwiGLU MLPs summed by weight, and
 * a shared expert's SwiGLU MLP added where the model has one (ERNIE 4.5; Qwen2-MoE's through a
 * sigmoid gate).
 */
export function moeBlock(g: GraphBuilder, c: ModelConfig, l: number, y: string): string {
  const moe = c.moe!;
  const n = expertNames(c, l);
  const logits = g.emit(`L${l}.router`, moe.numExperts, (out) => ({
    kind: "linear",
    out,
    x: y,
    weight: n.router,
    ...(n.routerBias ? { bias: n.routerBias } : {}),
  }));
  const mixture = g.emit(`L${l}.moe`, c.hiddenSize, (out) => ({
    kind: "moe",
    out,
    x: y,
    logits,
    gate: n.gate,
    up: n.up,
    down: n.down,
    topK: moe.topK,
    normalizeTopK: moe.normalizeTopK,
    hidden: moe.expertIntermediateSize,
    ...(n.selectionBias ? { selectionBias: n.selectionBias } : {}),
    ...(moe.sigmoidScores ? { sigmoid: true } : {}),
    ...(moe.routedScale !== undefined ? { scale: moe.routedScale } : {}),
    ...(n.biases ? { biases: n.biases } : {}),
    ...(moe.swigluClamp ? { swigluClamp: moe.swigluClamp } : {}),
  }));
  if (!n.shared) return mixture;
  const shared = gatedMlp(g, `L${l}.shared_`, y, n.shared, moe.sharedExpertSize!, c.hiddenSize, "silu_mul");
  const b = n.sharedGate ? sigmoidGated(g, `L${l}.shared_`, y, shared, n.sharedGate, c.hiddenSize) : shared;
  return g.emit(`L${l}.moe_shared`, c.hiddenSize, (out) => ({ kind: "add", out, a: mixture, b }));
}

/** Qwen2-MoE's shared expert `x` scaled by the sigmoid of one logit a token, `gate` · y. */
function sigmoidGated(
  g: GraphBuilder,
  prefix: string,
  y: string,
  x: string,
  gate: string,
  d: number,
): string {
  const logit = g.emit(`${prefix}logit`, 1, (out) => ({ kind: "linear", out, x: y, weight: gate }));
  return g.emit(`${prefix}gated`, d, (out) => ({ kind: "sigmoid_gate", out, x, gate: logit }));
}
