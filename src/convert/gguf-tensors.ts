import type { ModelConfig } from "../model/config.js";
import { dequantizeTensor, quantRowBytes } from "../model/gguf-dequant.js";
import {
  ggufExpertSlice,
  isNormWeight,
  ggufTensorName as modelGgufName,
  postAttentionNormNamed,
} from "../model/gguf-names.js";
import { interleaveRows, qkHeads, rotatedDims } from "../model/qk-row-order.js";
import { isQuantTensor, type QuantType, stackFloat32, type Tensor, toFloat32 } from "../model/tensor.js";
import type { WeightStore } from "../model/types.js";
import type { GgmlTypeName, GgufQuantize } from "./gguf-format.js";
import { quantFits, quantizeMatrix } from "./gguf-quantize.js";
import type { GgufTensorSource } from "./gguf-writer.js";

export function ggufTensorName(hfName: string, postNorms = false): string {
  try {
    return modelGgufName(hfName, postNorms);
  } catch (e) {
    throw new Error(`GGUF export: ${(e as Error).message}`);
  }
}

export interface TensorPlanOptions {
  /**
   * Undo the rotate-half row order of q/k (weights and biases) back to Meta's interleaved pairs,
   * which llama.cpp's "llama" RoPE expects; its "qwen2" RoPE is rotate-half already (false).
   */
  readonly interleaveQk: boolean;
  /**
   * The model's norm weights are Gemma's offsets from 1 (ModelConfig.normPlusOne): llama.cpp
   * stores the scale itself, 1 + w, computed in f32 as the engine computes it.
   */
  readonly normPlusOne?: boolean;
  /** Quantize the matrices (see quantTarget); absent: each as stored. */
  readonly quantize?: GgufQuantize;
}

/**
 * The GGUF tensors for a model, in llama.cpp's order and naming. Matrices keep their stored
 * precision or are quantized; 1-D tensors (norms, biases) are written as f32, as llama.cpp's own
 * converter does.
 */
export function planTensors(
  config: ModelConfig,
  weights: WeightStore,
  opts: TensorPlanOptions,
): GgufTensorSource[] {
  const out: GgufTensorSource[] = [];
  const ropeFreqs = llama3RopeFactors(config);
  if (ropeFreqs) out.push(f32Source("rope_freqs.weight", ropeFreqs));
  const s = config.ropeScaling;
  if (s?.type === "longrope") {
    // Phi-3's LongRoPE tables, one divisor per frequency, under llama.cpp's names.
    out.push(f32Source("rope_factors_long.weight", Float32Array.from(s.longFactor)));
    out.push(f32Source("rope_factors_short.weight", Float32Array.from(s.shortFactor)));
  }
  for (const [hfName, t] of weights) {
    const slice = ggufExpertSlice(hfName);
    if (slice) {
      // A layer's experts go out as one stack per projection, written where expert 0 comes.
      if (slice.expert === 0) out.push(expertStack(config, weights, hfName, slice.name, opts));
      continue;
    }
    const name = ggufTensorName(hfName, postAttentionNormNamed(config));
    const heads = opts.interleaveQk ? qkHeads(config, hfName) : 0;
    // Vectors, and [1, n] weights (ERNIE 4.5's selection bias) stored as the vectors they are.
    if (t.shape.length === 1 || (t.shape.length === 2 && t.shape[0] === 1)) {
      let data = toFloat32(t);
      if (opts.normPlusOne && isNormWeight(hfName)) data = Float32Array.from(data, (v) => v + 1);
      if (heads > 0) {
        const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        const bytes = interleaveRows(raw, heads, 4, rotatedDims(config));
        data = new Float32Array(bytes.buffer);
      }
      out.push(f32Source(name, data));
      continue;
    }
    const target = opts.quantize
      ? quantTarget(opts.quantize, name, t.shape[1]!, config.numLayers, config.tieWordEmbeddings)
      : null;
    out.push(
      target && target !== t.dtype
        ? quantizedSource(name, t, target, heads, rotatedDims(config))
        : storedSource(name, t, heads, rotatedDims(config)),
    );
  }
  return out;
}

/** llama.cpp's quantizer's format for rows that are not whole 256-value blocks (others: Q8_0). */
const FALLBACK: Partial<Record<QuantType, QuantType>> = { q4_k: "q5_0", q5_k: "q5_1", iq4_xs: "iq4_nl" };

/**
 * The block format of one matrix under a quantization, after llama.cpp's mixes: q8_0 everywhere;
 * q4_0 with the output matrix in Q6_K; q4_k_m in Q4_K (q5_k_m in Q5_K) with Q6_K for the output
 * matrix and for attn_v and ffn_down in the first and last eighth of the layers and every third
 * layer between (llama.cpp's "use_more_bits"); iq4_xs in IQ4_XS with Q6_K for the output matrix
 * (llama.cpp's IQ4_XS mix without its per-tensor exceptions). With tied embeddings the embedding table is the
 * output matrix and is quantized as one. A matrix whose rows are not whole 256-value blocks falls
 * back as llama.cpp's quantizer does (Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0, IQ4_XS to IQ4_NL), and one whose
 * rows are not whole 32-value blocks either stays as stored (null).
 */
export function quantTarget(
  q: GgufQuantize,
  name: string,
  cols: number,
  nLayers: number,
  tiedEmbeddings = false,
): QuantType | null {
  // The router stays as stored, as llama.cpp's own quantizer leaves it.
  if (/\.ffn_gate_inp\.weight$/.test(name)) return null;
  const layer = Number(/^blk\.(\d+)\./.exec(name)?.[1] ?? -1);
  const moreBits =
    layer < nLayers / 8 || layer >= (7 * nLayers) / 8 || (layer - Math.floor(nLayers / 8)) % 3 === 2;
  const output = name === "output.weight" || (tiedEmbeddings && name === "token_embd.weight");
  let want: QuantType = "q8_0";
  if (q === "q4_0") want = output ? "q6_k" : "q4_0";
  if (q === "q4_k_m" || q === "q5_k_m") {
    const six = output || (/\.(attn_v|ffn_down|ffn_down_exps)\.weight$/.test(name) && moreBits);
    want = six ? "q6_k" : q === "q4_k_m" ? "q4_k" : "q5_k";
  }
  if (q === "iq4_xs") want = output ? "q6_k" : "iq4_xs";
  // llama.cpp's MXFP4_MOE: the experts' stacks in MXFP4, every other matrix Q8_0.
  if (q === "mxfp4_moe" && /_exps\.weight$/.test(name)) want = "mxfp4";
  if (quantFits(want, cols)) return want;
  const fallback = FALLBACK[want] ?? "q8_0";
  return quantFits(fallback, cols) ? fallback : null;
}

/**
 * The stack [experts, rows, cols] of one projection of a layer's experts, from expert 0's weight
 * name: every expert in the same format (quantized alike, or as stored).
 */
function expertStack(
  config: ModelConfig,
  weights: WeightStore,
  firstName: string,
  name: string,
  opts: TensorPlanOptions,
): GgufTensorSource {
  const n = config.moe!.numExperts;
  const parts = Array.from({ length: n }, (_, e) => {
    const hf = firstName.replace(/\.experts\.0\./, `.experts.${e}.`);
    const t = weights.get(hf);
    if (!t) throw new Error(`GGUF export: missing expert weight "${hf}"`);
    return t;
  });
  const first = parts[0]!;
  // gpt-oss's expert biases: one f32 [experts, width] table, never quantized.
  if (first.shape.length === 1) return f32Source(name, stackFloat32(parts), [n, first.shape[0]!]);
  const target = opts.quantize ? quantTarget(opts.quantize, name, first.shape[1]!, config.numLayers) : null;
  const sources = parts.map((t, e) => {
    if (t.dtype !== first.dtype || t.shape.join() !== first.shape.join())
      throw new Error(`GGUF export: expert ${e} of ${name} differs in type or shape from expert 0`);
    return target && target !== t.dtype ? quantizedSource(name, t, target, 0) : storedSource(name, t, 0);
  });
  return {
    name,
    type: sources[0]!.type,
    shape: [n, ...first.shape],
    byteLength: sources.reduce((a, s) => a + s.byteLength, 0),
    *chunks() {
      for (const s of sources) yield* s.chunks();
    },
  };
}

/** A matrix's values as fp32, whatever it is stored as. */
function matrixValues(t: Tensor): Float32Array {
  return isQuantTensor(t) ? dequantizeTensor(t) : toFloat32(t);
}

/** A matrix quantized as it is written (one matrix's fp32 copy alive at a time). */
function quantizedSource(
  name: string,
  t: Tensor,
  type: QuantType,
  interleaveHeads: number,
  /** The dims of each head RoPE rotates, whose rows are interleaved (qk-row-order.ts). */
  rotated?: number,
): GgufTensorSource {
  const [rows, cols] = t.shape as [number, number];
  const rowBytes = quantRowBytes(type, cols);
  return {
    name,
    type,
    shape: t.shape,
    byteLength: rows * rowBytes,
    *chunks() {
      const bytes = quantizeMatrix(type, matrixValues(t), cols);
      yield interleaveHeads > 0 ? interleaveRows(bytes, interleaveHeads, rowBytes, rotated) : bytes;
    },
  };
}

function f32Source(
  name: string,
  data: Float32Array,
  shape: readonly number[] = [data.length],
): GgufTensorSource {
  return {
    name,
    type: "f32",
    shape,
    byteLength: data.byteLength,
    *chunks() {
      yield new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    },
  };
}

function storedSource(name: string, t: Tensor, interleaveHeads: number, rotated?: number): GgufTensorSource {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const rowBytes = t.data.byteLength / t.shape[0]!;
  return {
    name,
    type: t.dtype satisfies GgmlTypeName,
    shape: t.shape,
    byteLength: t.data.byteLength,
    *chunks() {
      yield interleaveHeads > 0 ? interleaveRows(bytes, interleaveHeads, rowBytes, rotated) : bytes;
    },
  };
}

/**
 * Llama 3 RoPE scaling as llama.cpp applies it: a rope_freqs tensor of per-frequency divisors
 * (1 for short wavelengths, `factor` for long ones, interpolated between), the same rule our
 * rope tables use.
 */
export function llama3RopeFactors(c: ModelConfig): Float32Array | null {
  const s = c.ropeScaling;
  if (s?.type !== "llama3") return null;
  const half = c.headDim / 2;
  const out = new Float32Array(half);
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const freq = c.ropeTheta ** (-(2 * i) / c.headDim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth =
        (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}
