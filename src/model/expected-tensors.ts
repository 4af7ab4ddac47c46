import type { ModelConfig } from "./config.js";

/** One weight the graph needs: its Hugging Face name and shape. */
export interface ExpectedTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

/**
 * The tensors a Llama-family model of this config must provide, in Hugging Face naming and
 * layout (Linear weights are [out, in]). Every loader checks against this list, so the HF,
 * llama2.c and random-weight paths produce the same WeightStore.
 */
export function expectedTensors(c: ModelConfig): ExpectedTensor[] {
  const d = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const out: ExpectedTensor[] = [{ name: "model.embed_tokens.weight", shape: [c.vocabSize, d] }];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    out.push({ name: `${p}.input_layernorm.weight`, shape: [d] });
    out.push({ name: `${p}.self_attn.q_proj.weight`, shape: [qDim, d] });
    out.push({ name: `${p}.self_attn.k_proj.weight`, shape: [kvDim, d] });
    out.push({ name: `${p}.self_attn.v_proj.weight`, shape: [kvDim, d] });
    if (c.attentionBias) {
      out.push({ name: `${p}.self_attn.q_proj.bias`, shape: [qDim] });
      out.push({ name: `${p}.self_attn.k_proj.bias`, shape: [kvDim] });
      out.push({ name: `${p}.self_attn.v_proj.bias`, shape: [kvDim] });
    }
    out.push({ name: `${p}.self_attn.o_proj.weight`, shape: [d, qDim] });
    out.push({ name: `${p}.post_attention_layernorm.weight`, shape: [d] });
    out.push({ name: `${p}.mlp.gate_proj.weight`, shape: [c.intermediateSize, d] });
    out.push({ name: `${p}.mlp.up_proj.weight`, shape: [c.intermediateSize, d] });
    out.push({ name: `${p}.mlp.down_proj.weight`, shape: [d, c.intermediateSize] });
  }
  out.push({ name: "model.norm.weight", shape: [d] });
  if (!c.tieWordEmbeddings) out.push({ name: "lm_head.weight", shape: [c.vocabSize, d] });
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
