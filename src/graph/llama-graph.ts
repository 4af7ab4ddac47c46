import type { ModelConfig } from "../model/config.js";
import type { ModelGraph, Op, RowSpace, TensorInfo } from "./ops.js";

/**
 * The Llama-family forward pass (Llama 1/2/3, Mistral, Qwen2) as an operator graph. This is the
 * only place that knows the architecture; the converter, executor and every placement work from
 * the graph. Qwen2 differs only by q/k/v biases, tied models by the lm_head weight name.
 */
export function buildLlamaGraph(c: ModelConfig): ModelGraph {
  const ops: Op[] = [];
  const tensors = new Map<string, TensorInfo>();
  const t = (name: string, width: number, rows: RowSpace = "tokens"): string => {
    tensors.set(name, { name, width, rows });
    return name;
  };
  const qWidth = c.numHeads * c.headDim;
  const kvWidth = c.numKvHeads * c.headDim;

  let h = t("h0", c.hiddenSize);
  ops.push({ kind: "embed", out: h, table: "model.embed_tokens.weight" });
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    const x = t(`L${l}.attn_norm`, c.hiddenSize);
    ops.push({ kind: "rmsnorm", out: x, x: h, weight: `${p}.input_layernorm.weight`, eps: c.rmsNormEps });
    const bias = (w: string) => (c.attentionBias ? { bias: `${p}.self_attn.${w}.bias` } : {});
    const qRaw = t(`L${l}.q_raw`, qWidth);
    ops.push({ kind: "linear", out: qRaw, x, weight: `${p}.self_attn.q_proj.weight`, ...bias("q_proj") });
    const kRaw = t(`L${l}.k_raw`, kvWidth);
    ops.push({ kind: "linear", out: kRaw, x, weight: `${p}.self_attn.k_proj.weight`, ...bias("k_proj") });
    const v = t(`L${l}.v`, kvWidth);
    ops.push({ kind: "linear", out: v, x, weight: `${p}.self_attn.v_proj.weight`, ...bias("v_proj") });
    const q = t(`L${l}.q`, qWidth);
    ops.push({ kind: "rope", out: q, x: qRaw, heads: c.numHeads });
    const k = t(`L${l}.k`, kvWidth);
    ops.push({ kind: "rope", out: k, x: kRaw, heads: c.numKvHeads });
    const attn = t(`L${l}.attn`, qWidth);
    ops.push({ kind: "attention", layer: l, q, k, v, out: attn });
    const o = t(`L${l}.o`, c.hiddenSize);
    ops.push({ kind: "linear", out: o, x: attn, weight: `${p}.self_attn.o_proj.weight` });
    const hMid = t(`L${l}.h_mid`, c.hiddenSize);
    ops.push({ kind: "add", out: hMid, a: h, b: o });
    const y = t(`L${l}.mlp_norm`, c.hiddenSize);
    ops.push({
      kind: "rmsnorm",
      out: y,
      x: hMid,
      weight: `${p}.post_attention_layernorm.weight`,
      eps: c.rmsNormEps,
    });
    const gate = t(`L${l}.gate`, c.intermediateSize);
    ops.push({ kind: "linear", out: gate, x: y, weight: `${p}.mlp.gate_proj.weight` });
    const up = t(`L${l}.up`, c.intermediateSize);
    ops.push({ kind: "linear", out: up, x: y, weight: `${p}.mlp.up_proj.weight` });
    const act = t(`L${l}.act`, c.intermediateSize);
    ops.push({ kind: "silu_mul", out: act, gate, up });
    const down = t(`L${l}.down`, c.hiddenSize);
    ops.push({ kind: "linear", out: down, x: act, weight: `${p}.mlp.down_proj.weight` });
    h = t(`h${l + 1}`, c.hiddenSize);
    ops.push({ kind: "add", out: h, a: hMid, b: down });
  }
  const last = t("last", c.hiddenSize, "logits");
  ops.push({ kind: "select_rows", out: last, x: h });
  const normed = t("final_norm", c.hiddenSize, "logits");
  ops.push({ kind: "rmsnorm", out: normed, x: last, weight: "model.norm.weight", eps: c.rmsNormEps });
  const logits = t("logits", c.vocabSize, "logits");
  const head = c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  ops.push({ kind: "linear", out: logits, x: normed, weight: head });
  return {
    ops,
    tensors,
    output: logits,
    attention: { numLayers: c.numLayers, numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim },
  };
}
