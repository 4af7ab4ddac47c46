import type { ModelConfig } from "../model/config.js";
import { isSparseLayer, layerPrefix } from "../model/weight-names.js";
import { attentionBlock, mlpBlock, moeBlock } from "./decoder-blocks.js";
import { GraphBuilder } from "./graph-builder.js";
import type { ModelGraph } from "./ops.js";

/**
 * The forward pass of the pre-norm decoder families we run (Llama 1/2/3, Mistral, Qwen2, Qwen3,
 * Phi-3, Mixtral, Qwen3-MoE) as an operator graph. This and decoder-blocks.ts are the only places
 * that know the architecture; the converter, executor and every placement work from the graph.
 * The families differ only inside a layer's attention (biases, fused qkv, q/k norms) and FFN
 * (fused gate/up, mixture of experts); tied models by the lm_head weight name.
 */
export function buildLlamaGraph(c: ModelConfig): ModelGraph {
  const g = new GraphBuilder();
  const eps = c.rmsNormEps;
  const d = c.hiddenSize;
  let h = g.emit("h0", d, (out) => ({ kind: "embed", out, table: "model.embed_tokens.weight" }));
  for (let l = 0; l < c.numLayers; l++) {
    const p = layerPrefix(l);
    const hIn = h;
    const x = g.emit(`L${l}.attn_norm`, d, (out) => ({
      kind: "rmsnorm",
      out,
      x: hIn,
      weight: `${p}.input_layernorm.weight`,
      eps,
    }));
    const attn = attentionBlock(g, c, l, x);
    const o = g.emit(`L${l}.o`, d, (out) => ({
      kind: "linear",
      out,
      x: attn,
      weight: `${p}.self_attn.o_proj.weight`,
    }));
    const hMid = g.emit(`L${l}.h_mid`, d, (out) => ({ kind: "add", out, a: hIn, b: o }));
    const y = g.emit(`L${l}.mlp_norm`, d, (out) => ({
      kind: "rmsnorm",
      out,
      x: hMid,
      weight: `${p}.post_attention_layernorm.weight`,
      eps,
    }));
    const ffn = isSparseLayer(c, l) ? moeBlock(g, c, l, y) : mlpBlock(g, c, l, y);
    h = g.emit(`h${l + 1}`, d, (out) => ({ kind: "add", out, a: hMid, b: ffn }));
  }
  const hLast = h;
  const last = g.emit("last", d, (out) => ({ kind: "select_rows", out, x: hLast }), "logits");
  const normed = g.emit(
    "final_norm",
    d,
    (out) => ({ kind: "rmsnorm", out, x: last, weight: "model.norm.weight", eps }),
    "logits",
  );
  const head = c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  const logits = g.emit(
    "logits",
    c.vocabSize,
    (out) => ({ kind: "linear", out, x: normed, weight: head }),
    "logits",
  );
  return {
    ops: g.ops,
    tensors: g.tensors,
    output: logits,
    attention: { numLayers: c.numLayers, numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim },
  };
}
