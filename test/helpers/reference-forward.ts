import type { ModelConfig } from "../../src/model/config.js";
import { dequantizeTensor } from "../../src/model/gguf-dequant.js";
import {
  type DType,
  type FloatTensor,
  isQuantTensor,
  type Tensor,
  type TensorData,
} from "../../src/model/tensor.js";
import type { WeightStore } from "../../src/model/types.js";
import { referenceMoe } from "./reference-moe.js";

// The reference decodes 16-bit weights itself, from the formats' definitions, so a decoding bug in
// the code under test cannot cancel out (test/model/float-encodings.test.ts pins both).

/** bfloat16: sign, 8 exponent bits (bias 127), 7 fraction bits — the top half of a binary32. */
export function decodeBf16(bits: number): number {
  return decodeBinary(bits, 8, 7);
}

/** IEEE 754 binary16: sign, 5 exponent bits (bias 15), 10 fraction bits. */
export function decodeF16(bits: number): number {
  return decodeBinary(bits, 5, 10);
}

function decodeBinary(bits: number, expBits: number, fracBits: number): number {
  const sign = (bits >> (expBits + fracBits)) & 1 ? -1 : 1;
  const exp = (bits >> fracBits) & ((1 << expBits) - 1);
  const frac = bits & ((1 << fracBits) - 1);
  const bias = (1 << (expBits - 1)) - 1;
  if (exp === (1 << expBits) - 1) return frac === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  // Subnormals: no implicit leading 1, and the exponent of the smallest normal.
  if (exp === 0) return sign * frac * 2 ** (1 - bias - fracBits);
  return sign * (1 + frac / 2 ** fracBits) * 2 ** (exp - bias);
}

/** Element i of a tensor's data as a number, through the decoders above. */
export function referenceElement(dtype: DType, data: TensorData, i: number): number {
  if (dtype === "f32") return data[i]!;
  return dtype === "bf16" ? decodeBf16(data[i]!) : decodeF16(data[i]!);
}

/** Float64 views of a model's weights, decoded by the functions above. */
export interface ReferenceWeights {
  /** x · Wᵀ (+ bias) for a Linear weight [out, in]. */
  linear(x: Float64Array, name: string, bias?: string): Float64Array;
  /** A weight as a flat float64 vector. */
  vec(name: string): Float64Array;
  /** Element (r, k) of a 2-D weight. */
  at(name: string, r: number, k: number): number;
}

/** A quantized matrix as f32 values (decoded once; the block decoders have their own tests). */
const decodedQuant = new WeakMap<Tensor, FloatTensor>();
function asFloat(t: Tensor): FloatTensor {
  if (!isQuantTensor(t)) return t;
  let f = decodedQuant.get(t);
  if (!f) {
    f = { name: t.name, dtype: "f32", shape: t.shape, data: dequantizeTensor(t) };
    decodedQuant.set(t, f);
  }
  return f;
}

export function referenceWeights(w: WeightStore): ReferenceWeights {
  const get = (name: string): FloatTensor => {
    const t = w.get(name);
    if (!t) throw new Error(`reference: missing ${name}`);
    return asFloat(t);
  };
  const vec = (name: string): Float64Array => {
    const t = get(name);
    return Float64Array.from({ length: t.data.length }, (_, i) => referenceElement(t.dtype, t.data, i));
  };
  const at = (name: string, r: number, k: number): number => {
    const t = get(name);
    return referenceElement(t.dtype, t.data, r * t.shape[t.shape.length - 1]! + k);
  };
  const linear = (x: Float64Array, name: string, bias?: string): Float64Array => {
    const t = get(name);
    const rows = t.shape[0]!;
    const cols = t.shape[1]!;
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let k = 0; k < cols; k++) s += x[k]! * referenceElement(t.dtype, t.data, r * cols + k);
      out[r] = s;
    }
    if (bias) {
      const b = vec(bias);
      for (let r = 0; r < rows; r++) out[r] = out[r]! + b[r]!;
    }
    return out;
  };
  return { linear, vec, at };
}

/** x / rms(x) * g over one vector, in float64. */
export function referenceRmsnorm(x: Float64Array, g: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * g[i]!);
}

/**
 * An independent float64 forward pass of the families we run, written plainly for tests: no KV
 * cache, no paging, no slices — the whole sequence at once with a causal mask. Returns the logits
 * of every position. It shares nothing with the engine except the weight names.
 */
/**
 * `interleavedQk`: the weights hold q/k rows as the checkpoint stores them in interleaved RoPE
 * pairs (ERNIE 4.5), rotated here pair by pair, not reordered as the engine's loaders reorder them.
 */
export function referenceLogits(
  c: ModelConfig,
  w: WeightStore,
  tokens: readonly number[],
  opts: { interleavedQk?: boolean } = {},
): Float64Array[] {
  const rw = referenceWeights(w);
  // Gemma's norms scale by (1 + weight).
  const norm = (x: Float64Array, name: string) => referenceRmsnorm(x, normWeight(c, rw, name), c.rmsNormEps);
  const emb = "model.embed_tokens.weight";
  const root = Math.sqrt(c.hiddenSize);
  const embScale = c.embedScale
    ? c.embedScaleExact
      ? root
      : roundToDtype(asFloat(w.get(emb)!).dtype, root)
    : (c.embedMultiplier ?? 1);
  // Granite: each block's output joins the residual stream times this; logits are divided by that.
  const residual = c.residualMultiplier ?? 1;
  const divisor = c.logitsDivisor ?? 1;
  let hs = tokens.map((t) =>
    Float64Array.from({ length: c.hiddenSize }, (_, i) => rw.at(emb, t, i) * embScale),
  );
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    // OLMo 2 norms no block's input, only its output.
    const pre = (x: Float64Array, name: string) => (c.postNormsOnly ? x : norm(x, name));
    const post = c.postNorms === true || c.postNormsOnly === true;
    const qkv = hs.map((h, pos) =>
      referenceQkv(c, rw, l, pre(h, `${p}.input_layernorm.weight`), pos, opts.interleavedQk ?? false),
    );
    hs = hs.map((h, pos) => {
      const sinks = c.attnSinks ? rw.vec(`${p}.self_attn.sinks`) : undefined;
      const att = referenceAttention(c, l, qkv, pos, sinks);
      const oBias = c.outputBias ? `${p}.self_attn.o_proj.bias` : undefined;
      let o = rw.linear(att, `${p}.self_attn.o_proj.weight`, oBias);
      // GLM-4 names its four norms its own way: post_self_attn (attention output), post_attention
      // (before the FFN), post_mlp (FFN output).
      const glm = c.architecture === "glm4";
      if (post) o = norm(o, `${p}.${glm ? "post_self_attn_layernorm" : "post_attention_layernorm"}.weight`);
      const mid = h.map((v, i) => v + residual * o[i]!);
      const preFfn = c.postNorms && !glm ? "pre_feedforward_layernorm" : "post_attention_layernorm";
      let d = referenceFfn(c, rw, l, pre(mid, `${p}.${preFfn}.weight`));
      if (post) d = norm(d, `${p}.${glm ? "post_mlp_layernorm" : "post_feedforward_layernorm"}.weight`);
      return mid.map((v, i) => v + residual * d[i]!);
    });
  }
  const head = c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  const cap = c.finalSoftcap;
  return hs.map((h) => {
    const logits = rw.linear(norm(h, "model.norm.weight"), head).map((v) => v / divisor);
    return cap === undefined ? logits : logits.map((v) => cap * Math.tanh(v / cap));
  });
}

function normWeight(c: ModelConfig, rw: ReferenceWeights, name: string): Float64Array {
  const g = rw.vec(name);
  return c.normPlusOne ? g.map((v) => 1 + v) : g;
}

/** `v` rounded to nearest-even in a 16-bit float format (transformers scales embeddings in the model's dtype). */
function roundToDtype(dtype: DType, v: number): number {
  if (dtype === "f32") return Math.fround(v);
  const bits = new Uint32Array(new Float32Array([v]).buffer)[0]!;
  if (dtype === "bf16") return decodeBf16((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
  // binary16: 10 fraction bits of a normal number (the scales here are far from its limits).
  const e = Math.floor(Math.log2(Math.abs(v)));
  const ulp = 2 ** (e - 10);
  const q = v / ulp;
  const r = Math.floor(q);
  const rounded = q - r > 0.5 || (q - r === 0.5 && r % 2 === 1) ? r + 1 : r;
  return rounded * ulp;
}

/** Whether layer l attends within the sliding window (every layer unless the config names some). */
function windowed(c: ModelConfig, l: number): boolean {
  return c.slidingWindow !== null && (c.slidingLayers?.[l] ?? true);
}

interface Qkv {
  readonly q: Float64Array;
  readonly k: Float64Array;
  readonly v: Float64Array;
}

/** q, k (normed per head for Qwen3, then rotated) and v of one token. */
function referenceQkv(
  c: ModelConfig,
  rw: ReferenceWeights,
  l: number,
  x: Float64Array,
  pos: number,
  interleaved: boolean,
): Qkv {
  const p = `model.layers.${l}.self_attn`;
  const hd = c.headDim;
  let q: Float64Array;
  let k: Float64Array;
  let v: Float64Array;
  if (c.fusedProjections) {
    const all = rw.linear(x, `${p}.qkv_proj.weight`);
    const qw = c.numHeads * hd;
    const kw = c.numKvHeads * hd;
    q = all.slice(0, qw);
    k = all.slice(qw, qw + kw);
    v = all.slice(qw + kw, qw + 2 * kw);
  } else {
    const b = (n: string) => (c.attentionBias ? `${p}.${n}.bias` : undefined);
    q = rw.linear(x, `${p}.q_proj.weight`, b("q_proj"));
    k = rw.linear(x, `${p}.k_proj.weight`, b("k_proj"));
    v = rw.linear(x, `${p}.v_proj.weight`, b("v_proj"));
  }
  if (c.qkNorm) {
    // Per head, or (OLMo 2) over the whole projection as one slice.
    q = normHeads(q, normWeight(c, rw, `${p}.q_norm.weight`), c.qkNormFull ? q.length : hd, c.rmsNormEps);
    k = normHeads(k, normWeight(c, rw, `${p}.k_norm.weight`), c.qkNormFull ? k.length : hd, c.rmsNormEps);
  }
  // Gemma 3's window layers rotate with their own base and no scaling.
  const rc =
    c.localRopeTheta !== undefined && windowed(c, l)
      ? { ...c, ropeTheta: c.localRopeTheta, ropeScaling: null }
      : c;
  // SmolLM3's no-RoPE layers (no_rope_layers 0) attend with q and k as projected.
  if (c.ropeLayers?.[l] !== false) {
    referenceRope(rc, q, c.numHeads, pos, interleaved);
    referenceRope(rc, k, c.numKvHeads, pos, interleaved);
  }
  return { q, k, v };
}

function normHeads(x: Float64Array, g: Float64Array, hd: number, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let h = 0; h < x.length / hd; h++)
    out.set(referenceRmsnorm(x.slice(h * hd, (h + 1) * hd), g, eps), h * hd);
  return out;
}

/**
 * RoPE in place, rotating dims i and i + half (rotate-half) or, `interleaved`, dims 2i and 2i + 1
 * (ERNIE 4.5's checkpoints); LongRoPE's frequencies by position, and LongRoPE's and YaRN's magnitude factor.
 */
function referenceRope(
  c: ModelConfig,
  x: Float64Array,
  heads: number,
  pos: number,
  interleaved = false,
): void {
  const hd = c.headDim;
  // Partial rotary embeddings: the first rotaryDim dims of a head rotate, paired within them.
  const half = (c.rotaryDim ?? hd) / 2;
  const s = c.ropeScaling;
  const invFreq = ropeInvFreq(c, s?.type === "longrope" && pos >= s.originalMaxPositionEmbeddings);
  const mag = s?.type === "longrope" || s?.type === "yarn" ? s.attentionFactor : 1;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      const a = pos * invFreq[i]!;
      const [j1, j2] = interleaved ? [h * hd + 2 * i, h * hd + 2 * i + 1] : [h * hd + i, h * hd + half + i];
      const x1 = x[j1]!;
      const x2 = x[j2]!;
      x[j1] = mag * (x1 * Math.cos(a) - x2 * Math.sin(a));
      x[j2] = mag * (x2 * Math.cos(a) + x1 * Math.sin(a));
    }
  }
}

/**
 * Causal GQA attention of token `pos` over tokens 0..pos (the last slidingWindow of them on a
 * window layer), scores scaled by 1/√headDim or the family's scale and soft-capped where it caps.
 * gpt-oss's sinks (transformers' eager attention): each head's sink logit is one more column of
 * the softmax, dropped after it (a key whose value is zero).
 */
function referenceAttention(
  c: ModelConfig,
  l: number,
  qkv: readonly Qkv[],
  pos: number,
  sinks?: Float64Array,
): Float64Array {
  const hd = c.headDim;
  const group = c.numHeads / c.numKvHeads;
  const att = new Float64Array(c.numHeads * hd);
  const lo = windowed(c, l) ? Math.max(0, pos + 1 - c.slidingWindow!) : 0;
  const scale = c.attentionScale ?? 1 / Math.sqrt(hd);
  const cap = c.attnSoftcap;
  for (let head = 0; head < c.numHeads; head++) {
    const kh = Math.floor(head / group);
    const scores: number[] = [];
    for (let j = lo; j <= pos; j++) {
      let s = 0;
      for (let i = 0; i < hd; i++) s += qkv[pos]!.q[head * hd + i]! * qkv[j]!.k[kh * hd + i]!;
      scores.push(cap === undefined ? s * scale : cap * Math.tanh((s * scale) / cap));
    }
    const sink = sinks?.[head];
    const m = Math.max(...scores, sink ?? Number.NEGATIVE_INFINITY);
    const e = scores.map((s) => Math.exp(s - m));
    const z = e.reduce((a, v) => a + v, 0) + (sink === undefined ? 0 : Math.exp(sink - m));
    for (let j = lo; j <= pos; j++) {
      for (let i = 0; i < hd; i++)
        att[head * hd + i] = att[head * hd + i]! + (e[j - lo]! / z) * qkv[j]!.v[kh * hd + i]!;
    }
  }
  return att;
}

/** SwiGLU: down(silu(gate·y) * up·y). */
export function referenceSwiglu(
  rw: ReferenceWeights,
  y: Float64Array,
  gate: string,
  up: string,
  down: string,
): Float64Array {
  const g = rw.linear(y, gate);
  const u = rw.linear(y, up);
  return rw.linear(
    g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]!),
    down,
  );
}

/** GeGLU with the tanh GELU: down(gelu_tanh(gate·y) * up·y). */
function referenceGeglu(rw: ReferenceWeights, y: Float64Array, p: string): Float64Array {
  const g = rw.linear(y, `${p}.mlp.gate_proj.weight`);
  const u = rw.linear(y, `${p}.mlp.up_proj.weight`);
  const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  return rw.linear(
    g.map((v, i) => gelu(v) * u[i]!),
    `${p}.mlp.down_proj.weight`,
  );
}

/** The FFN of layer l: the dense MLP (gate/up fused for Phi-3; GeGLU for Gemma), or the mixture of experts. */
function referenceFfn(c: ModelConfig, rw: ReferenceWeights, l: number, y: Float64Array): Float64Array {
  const p = `model.layers.${l}`;
  if (c.moe?.sparseLayers[l]) return referenceMoe(c, rw, l, y);
  if (c.activation === "gelu_tanh") return referenceGeglu(rw, y, p);
  if (!c.fusedProjections && !c.fusedGateUp)
    return referenceSwiglu(
      rw,
      y,
      `${p}.mlp.gate_proj.weight`,
      `${p}.mlp.up_proj.weight`,
      `${p}.mlp.down_proj.weight`,
    );
  const both = rw.linear(y, `${p}.mlp.gate_up_proj.weight`);
  const I = c.intermediateSize;
  const a = both.slice(0, I).map((v, i) => (v / (1 + Math.exp(-v))) * both[I + i]!);
  return rw.linear(a, `${p}.mlp.down_proj.weight`);
}

/** RoPE inverse frequencies with llama3 / linear / longrope / yarn scaling, computed independently of the engine. */
export function ropeInvFreq(c: ModelConfig, long = false): Float64Array {
  const dim = c.rotaryDim ?? c.headDim;
  const inv = Float64Array.from({ length: dim / 2 }, (_, i) => 1 / c.ropeTheta ** ((2 * i) / dim));
  const s = c.ropeScaling;
  if (!s) return inv;
  if (s.type === "linear") return inv.map((f) => f / s.factor);
  if (s.type === "longrope") return inv.map((f, i) => f / (long ? s.longFactor : s.shortFactor)[i]!);
  if (s.type === "yarn") {
    // The YaRN paper's rule: the dim whose frequency turns r times over the original context is
    // d(r) = dim · ln(L / (2π r)) / (2 ln θ); below d(βfast) frequencies extrapolate (unchanged),
    // above d(βslow) they interpolate (÷ factor), linearly between.
    const d = (r: number) =>
      (dim * Math.log(s.originalMaxPositionEmbeddings / (2 * Math.PI * r))) / (2 * Math.log(c.ropeTheta));
    const lo = Math.max(0, s.truncate ? Math.floor(d(s.betaFast)) : d(s.betaFast));
    let hi = Math.min(dim - 1, s.truncate ? Math.ceil(d(s.betaSlow)) : d(s.betaSlow));
    if (hi === lo) hi += 0.001;
    return inv.map((f, i) => {
      const ramp = Math.min(1, Math.max(0, (i - lo) / (hi - lo)));
      return (f / s.factor) * ramp + f * (1 - ramp);
    });
  }
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / s.factor;
    const smooth =
      (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}
