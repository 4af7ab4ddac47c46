import type { ModelConfig } from "../../src/model/config.js";
import type { DType, Tensor, TensorData } from "../../src/model/tensor.js";
import type { WeightStore } from "../../src/model/types.js";

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

/**
 * An independent float64 Llama-family forward pass, written plainly for tests: no KV cache, no
 * paging, no slices — the whole sequence at once with a causal mask. Returns the logits of every
 * position. It shares nothing with the engine except the weight names.
 */
export function referenceLogits(c: ModelConfig, w: WeightStore, tokens: readonly number[]): Float64Array[] {
  const get = (name: string): Tensor => {
    const t = w.get(name);
    if (!t) throw new Error(`reference: missing ${name}`);
    return t;
  };
  const mat = (name: string): { rows: number; cols: number; at: (r: number, k: number) => number } => {
    const t = get(name);
    const cols = t.shape[t.shape.length - 1]!;
    return { rows: t.shape[0]!, cols, at: (r, k) => referenceElement(t.dtype, t.data, r * cols + k) };
  };
  const vec = (name: string): Float64Array => {
    const t = get(name);
    return Float64Array.from({ length: t.data.length }, (_, i) => referenceElement(t.dtype, t.data, i));
  };
  const linear = (x: Float64Array, name: string, bias?: string): Float64Array => {
    const m = mat(name);
    const out = new Float64Array(m.rows);
    for (let r = 0; r < m.rows; r++) {
      let s = 0;
      for (let k = 0; k < m.cols; k++) s += x[k]! * m.at(r, k);
      out[r] = s;
    }
    if (bias) {
      const b = vec(bias);
      for (let r = 0; r < m.rows; r++) out[r] = out[r]! + b[r]!;
    }
    return out;
  };
  const rmsnorm = (x: Float64Array, name: string): Float64Array => {
    const g = vec(name);
    let ss = 0;
    for (const v of x) ss += v * v;
    const inv = 1 / Math.sqrt(ss / x.length + c.rmsNormEps);
    return x.map((v, i) => v * inv * g[i]!);
  };
  const hd = c.headDim;
  const invFreq = ropeInvFreq(c);
  const rope = (x: Float64Array, heads: number, pos: number): void => {
    const half = hd / 2;
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const a = pos * invFreq[i]!;
        const x1 = x[h * hd + i]!;
        const x2 = x[h * hd + half + i]!;
        x[h * hd + i] = x1 * Math.cos(a) - x2 * Math.sin(a);
        x[h * hd + half + i] = x2 * Math.cos(a) + x1 * Math.sin(a);
      }
    }
  };
  const emb = mat("model.embed_tokens.weight");
  let hs = tokens.map((t) => Float64Array.from({ length: c.hiddenSize }, (_, i) => emb.at(t, i)));
  const group = c.numHeads / c.numKvHeads;
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    const b = (n: string) => (c.attentionBias ? `${p}.self_attn.${n}.bias` : undefined);
    const qs: Float64Array[] = [];
    const ks: Float64Array[] = [];
    const vs: Float64Array[] = [];
    hs.forEach((h, pos) => {
      const x = rmsnorm(h, `${p}.input_layernorm.weight`);
      const q = linear(x, `${p}.self_attn.q_proj.weight`, b("q_proj"));
      const k = linear(x, `${p}.self_attn.k_proj.weight`, b("k_proj"));
      rope(q, c.numHeads, pos);
      rope(k, c.numKvHeads, pos);
      qs.push(q);
      ks.push(k);
      vs.push(linear(x, `${p}.self_attn.v_proj.weight`, b("v_proj")));
    });
    hs = hs.map((h, pos) => {
      const att = new Float64Array(c.numHeads * hd);
      for (let head = 0; head < c.numHeads; head++) {
        const kh = Math.floor(head / group);
        const lo = c.slidingWindow ? Math.max(0, pos + 1 - c.slidingWindow) : 0;
        const scores: number[] = [];
        for (let j = lo; j <= pos; j++) {
          let s = 0;
          for (let i = 0; i < hd; i++) s += qs[pos]![head * hd + i]! * ks[j]![kh * hd + i]!;
          scores.push(s / Math.sqrt(hd));
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, v) => a + v, 0);
        for (let j = lo; j <= pos; j++) {
          for (let i = 0; i < hd; i++)
            att[head * hd + i] = att[head * hd + i]! + (e[j - lo]! / z) * vs[j]![kh * hd + i]!;
        }
      }
      const o = linear(att, `${p}.self_attn.o_proj.weight`);
      const mid = h.map((v, i) => v + o[i]!);
      const y = rmsnorm(mid, `${p}.post_attention_layernorm.weight`);
      const g = linear(y, `${p}.mlp.gate_proj.weight`);
      const u = linear(y, `${p}.mlp.up_proj.weight`);
      const a = g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]!);
      const d = linear(a, `${p}.mlp.down_proj.weight`);
      return mid.map((v, i) => v + d[i]!);
    });
  }
  const head = c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  return hs.map((h) => linear(rmsnorm(h, "model.norm.weight"), head));
}

/** RoPE inverse frequencies with llama3 / linear scaling, computed independently of the engine. */
export function ropeInvFreq(c: ModelConfig): Float64Array {
  const half = c.headDim / 2;
  const inv = Float64Array.from({ length: half }, (_, i) => 1 / c.ropeTheta ** ((2 * i) / c.headDim));
  const s = c.ropeScaling;
  if (!s) return inv;
  if (s.type === "linear") return inv.map((f) => f / s.factor);
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
