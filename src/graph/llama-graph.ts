import { hasPostNorms, isWindowLayer, type ModelConfig } from "../model/config.js";
import { isSparseLayer, layerNormNames, layerPrefix } from "../model/weight-names.js";
import { attentionBlock, mlpBlock, moeBlock, plusOne } from "./decoder-blocks.js";
import { GraphBuilder } from "./graph-builder.js";
import type { ModelGraph } from "./ops.js";

/**
 * The forward pass of the decoder families we run (Llama 1/2/3, Mistral, Qwen2, Qwen3, Phi-3,
 * Mixtral, Qwen3-MoE, Gemma 2 and 3, Granite 3, SmolLM3, OLMo 2) as an operator graph. This and
 * decoder-blocks.ts are the only places that know the architecture; the converter, executor and
 * every placement work from the graph. The families differ inside a layer's attention (biases,
 * fused qkv, q/k norms per head or over the whole projection, RoPE base, SmolLM3's layers without
 * RoPE) and FFN (fused gate/up, activation, mixture of experts), in where the norms sit (before
 * each block; Gemma's after it too; OLMo 2's after it only), in scaled embeddings, Granite's
 * multipliers (embeddings, block outputs, logits) and soft-capped logits; tied models by the
 * lm_head weight name.
 */
export function buildLlamaGraph(c: ModelConfig): ModelGraph {
  const g = new GraphBuilder();
  const d = c.hiddenSize;
  const scale = c.embedScale
    ? { scale: Math.sqrt(d), ...(c.embedScaleExact ? { scaleExact: true } : {}) }
    : c.embedMultiplier !== undefined
      ? { scale: c.embedMultiplier, scaleExact: true }
      : {};
  let h = g.emit("h0", d, (out) => ({ kind: "embed", out, table: "model.embed_tokens.weight", ...scale }));
  for (let l = 0; l < c.numLayers; l++) h = decoderLayer(g, c, l, h);
  const logits = lmHead(g, c, h);
  return {
    ops: g.ops,
    tensors: g.tensors,
    output: logits,
    attention: {
      numLayers: c.numLayers,
      numHeads: c.numHeads,
      numKvHeads: c.numKvHeads,
      headDim: c.headDim,
      windows: Array.from({ length: c.numLayers }, (_, l) => (isWindowLayer(c, l) ? c.slidingWindow : null)),
    },
  };
}

/**
 * One layer: h + attn(norm(h)), then + ffn(norm(·)). With post-norms (Gemma) each block's output
 * is normed before it joins the residual stream, and the pre-FFN norm has its own weight.
 */
function decoderLayer(g: GraphBuilder, c: ModelConfig, l: number, hIn: string): string {
  const d = c.hiddenSize;
  const norms = layerNormNames(l, c);
  const norm = (name: string, x: string, weight: string) =>
    g.emit(`L${l}.${name}`, d, (out) => ({
      kind: "rmsnorm",
      out,
      x,
      weight,
      eps: c.rmsNormEps,
      ...plusOne(c),
    }));
  // OLMo 2 norms nothing on the way into a block, only its output.
  const x = c.postNormsOnly ? hIn : norm("attn_norm", hIn, norms.input);
  const attn = attentionBlock(g, c, l, x);
  let o = g.emit(`L${l}.o`, d, (out) => ({
    kind: "linear",
    out,
    x: attn,
    weight: `${layerPrefix(l)}.self_attn.o_proj.weight`,
    ...(c.outputBias ? { bias: `${layerPrefix(l)}.self_attn.o_proj.bias` } : {}),
  }));
  if (hasPostNorms(c)) o = norm("attn_post_norm", o, norms.postAttention);
  if (c.residualMultiplier !== undefined) o = residualScale(g, c.residualMultiplier, `L${l}.o_scaled`, o, d);
  const oOut = o;
  const hMid = g.emit(`L${l}.h_mid`, d, (out) => ({ kind: "add", out, a: hIn, b: oOut }));
  const y = c.postNormsOnly
    ? hMid
    : norm("mlp_norm", hMid, c.postNorms ? norms.preFeedforward : norms.postAttention);
  let ffn = isSparseLayer(c, l) ? moeBlock(g, c, l, y) : mlpBlock(g, c, l, y);
  if (hasPostNorms(c)) ffn = norm("mlp_post_norm", ffn, norms.postFeedforward);
  if (c.residualMultiplier !== undefined)
    ffn = residualScale(g, c.residualMultiplier, `L${l}.mlp_scaled`, ffn, d);
  const fOut = ffn;
  return g.emit(`h${l + 1}`, d, (out) => ({ kind: "add", out, a: hMid, b: fOut }));
}

/** The last token of each sequence, the final norm, the LM head and Gemma 2's logit soft-cap. */
function lmHead(g: GraphBuilder, c: ModelConfig, h: string): string {
  const d = c.hiddenSize;
  const last = g.emit("last", d, (out) => ({ kind: "select_rows", out, x: h }), "logits");
  const normed = g.emit(
    "final_norm",
    d,
    (out) => ({
      kind: "rmsnorm",
      out,
      x: last,
      weight: "model.norm.weight",
      eps: c.rmsNormEps,
      ...plusOne(c),
    }),
    "logits",
  );
  const head = c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  const logits = g.emit(
    "logits",
    c.vocabSize,
    (out) => ({ kind: "linear", out, x: normed, weight: head }),
    "logits",
  );
  let scaled = logits;
  const divisor = c.logitsDivisor;
  if (divisor !== undefined)
    scaled = g.emit(
      "logits_scaled",
      c.vocabSize,
      (out) => ({ kind: "scale", out, x: logits, factor: 1 / divisor }),
      "logits",
    );
  const cap = c.finalSoftcap;
  if (cap === undefined) return scaled;
  return g.emit("logits_capped", c.vocabSize, (out) => ({ kind: "softcap", out, x: scaled, cap }), "logits");
}

/** Granite: a block's output times the residual multiplier before it joins the residual stream. */
function residualScale(g: GraphBuilder, factor: number, name: string, x: string, d: number): string {
  return g.emit(name, d, (out) => ({ kind: "scale", out, x, factor }));
}
