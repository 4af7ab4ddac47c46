import { hasFusedGateUp, type ModelConfig } from "./config.js";
import { attentionNames, expertNames, isSparseLayer, layerNormNames, mlpNames } from "./weight-names.js";

/** One weight the graph needs: its Hugging Face name and shape. */
export interface ExpectedTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

/**
 * The tensors a model of this config must provide, in Hugging Face naming and layout (Linear
 * weights are [out, in]). Every loader checks against this list, so the HF, llama2.c, GGUF and
 * random-weight paths produce the same WeightStore.
 */
export function expectedTensors(c: ModelConfig): ExpectedTensor[] {
  const d = c.hiddenSize;
  const out: ExpectedTensor[] = [{ name: "model.embed_tokens.weight", shape: [c.vocabSize, d] }];
  for (let l = 0; l < c.numLayers; l++) {
    const norms = layerNormNames(l, c);
    if (!c.postNormsOnly) out.push({ name: norms.input, shape: [d] });
    out.push(...attentionTensors(c, l));
    out.push({ name: norms.postAttention, shape: [d] });
    if (c.postNormsOnly) out.push({ name: norms.postFeedforward, shape: [d] });
    if (c.postNorms) {
      out.push({ name: norms.preFeedforward, shape: [d] }, { name: norms.postFeedforward, shape: [d] });
    }
    out.push(...(isSparseLayer(c, l) ? expertTensors(c, l) : mlpTensors(c, l)));
  }
  out.push({ name: "model.norm.weight", shape: [d] });
  if (!c.tieWordEmbeddings) out.push({ name: "lm_head.weight", shape: [c.vocabSize, d] });
  return out;
}

function attentionTensors(c: ModelConfig, l: number): ExpectedTensor[] {
  const d = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const n = attentionNames(l);
  const out: ExpectedTensor[] = [];
  if (c.fusedProjections) {
    out.push({ name: n.qkv, shape: [qDim + 2 * kvDim, d] });
  } else {
    out.push(
      { name: n.q, shape: [qDim, d] },
      { name: n.k, shape: [kvDim, d] },
      { name: n.v, shape: [kvDim, d] },
    );
  }
  if (c.attentionBias) {
    out.push({ name: n.bias("q_proj"), shape: [qDim] });
    out.push({ name: n.bias("k_proj"), shape: [kvDim] });
    out.push({ name: n.bias("v_proj"), shape: [kvDim] });
  }
  if (c.qkNorm) {
    const full = c.qkNormFull === true;
    out.push(
      { name: n.qNorm, shape: [full ? qDim : c.headDim] },
      { name: n.kNorm, shape: [full ? kvDim : c.headDim] },
    );
  }
  out.push({ name: n.o, shape: [d, qDim] });
  if (c.outputBias) out.push({ name: n.oBias, shape: [d] });
  if (c.attnSinks) out.push({ name: n.sinks, shape: [c.numHeads] });
  return out;
}

function mlpTensors(c: ModelConfig, l: number): ExpectedTensor[] {
  const d = c.hiddenSize;
  const i = c.intermediateSize;
  const n = mlpNames(l);
  const inner: ExpectedTensor[] = hasFusedGateUp(c)
    ? [{ name: n.gateUp, shape: [2 * i, d] }]
    : [
        { name: n.gate, shape: [i, d] },
        { name: n.up, shape: [i, d] },
      ];
  return [...inner, { name: n.down, shape: [d, i] }];
}

function expertTensors(c: ModelConfig, l: number): ExpectedTensor[] {
  const d = c.hiddenSize;
  const moe = c.moe!;
  const i = moe.expertIntermediateSize;
  const n = expertNames(c, l);
  const out: ExpectedTensor[] = [{ name: n.router, shape: [moe.numExperts, d] }];
  for (let e = 0; e < moe.numExperts; e++) {
    out.push({ name: n.gate[e]!, shape: [i, d] });
    out.push({ name: n.up[e]!, shape: [i, d] });
    out.push({ name: n.down[e]!, shape: [d, i] });
  }
  // ERNIE's is [1, experts], GLM-4.5's (DeepSeek V3's) a vector.
  if (n.selectionBias)
    out.push({
      name: n.selectionBias,
      shape: c.architecture === "glm4_moe" ? [moe.numExperts] : [1, moe.numExperts],
    });
  if (n.routerBias) out.push({ name: n.routerBias, shape: [moe.numExperts] });
  if (n.sharedGate) out.push({ name: n.sharedGate, shape: [1, d] });
  if (n.biases)
    for (let e = 0; e < moe.numExperts; e++)
      out.push(
        { name: n.biases.gate[e]!, shape: [i] },
        { name: n.biases.up[e]!, shape: [i] },
        { name: n.biases.down[e]!, shape: [d] },
      );
  if (n.shared) {
    const s = moe.sharedExpertSize!;
    out.push(
      { name: n.shared.gate, shape: [s, d] },
      { name: n.shared.up, shape: [s, d] },
      { name: n.shared.down, shape: [d, s] },
    );
  }
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
