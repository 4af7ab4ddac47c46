import { type RopeScaling, yarnMscale } from "./config.js";
import type { Meta } from "./gguf-meta.js";
import { GgufError, type GgufFile, shortestF32 } from "./gguf-reader.js";
import { tensorDataOver } from "./tensor.js";

/**
 * Llama 3 RoPE scaling from a GGUF file's rope_freqs tensor. llama.cpp stores only the
 * per-frequency divisors: 1 for wavelengths below original/high_freq_factor, `factor` above
 * original/low_freq_factor, and 1/((1−s)/factor + s) between, where s = (original/wavelength −
 * low)/(high − low). The divisors depend on the three parameters only through original/low and
 * original/high, so with `original` taken from the metadata (or the context length) the two
 * others are solved from the table; the result is accepted only if it reproduces every divisor.
 */
export function llama3FromRopeFreqs(
  divisors: Float32Array,
  headDim: number,
  theta: number,
  original: number,
): Extract<RopeScaling, { type: "llama3" }> | string {
  const half = headDim / 2;
  if (divisors.length !== half) return `has ${divisors.length} entries for a head dimension of ${headDim}`;
  const factor = Math.max(...divisors);
  if (!(factor > 1)) return `holds no scaling (largest divisor ${factor})`;
  const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b));
  const x = (i: number) => theta ** (-(2 * i) / headDim) / (2 * Math.PI); // 1 / wavelength
  // Interpolated entries give points (1/wavelength, s) on the line s = original·x/(high−low) − low/(high−low).
  const pts: [number, number][] = [];
  let lastOne = -1;
  let firstFull = half;
  for (let i = 0; i < half; i++) {
    const v = divisors[i]!;
    if (close(v, 1)) lastOne = i;
    else if (close(v, factor)) firstFull = Math.min(firstFull, i);
    else pts.push([x(i), (1 / v - 1 / factor) / (1 - 1 / factor)]);
  }
  // Bounds in 1/wavelength: s reaches 1 at xHigh = high/original and 0 at xLow = low/original.
  let xHigh: number;
  let xLow: number;
  if (pts.length >= 2) {
    const [[x1, s1], [x2, s2]] = [pts[0]!, pts.at(-1)!];
    const slope = (s1 - s2) / (x1 - x2);
    xLow = x1 - s1 / slope;
    xHigh = xLow + 1 / slope;
  } else {
    // Too few interpolated entries to pin the line: any bounds between the bands reproduce the table.
    const hi = lastOne >= 0 ? x(lastOne) : x(0) * 2;
    const lo = firstFull < half ? x(firstFull) : x(half - 1) / 2;
    if (pts.length === 1) {
      // A line through the one point, steep enough to leave both bands on their sides.
      const [xi, si] = pts[0]!;
      const slope = 2 * Math.max(si / (xi - lo), (1 - si) / (hi - xi));
      xLow = xi - si / slope;
      xHigh = xi + (1 - si) / slope;
    } else {
      xHigh = lo + ((hi - lo) * 2) / 3;
      xLow = lo + (hi - lo) / 3;
    }
  }
  const out = {
    type: "llama3" as const,
    factor,
    lowFreqFactor: xLow * original,
    highFreqFactor: xHigh * original,
    originalMaxPositionEmbeddings: original,
  };
  if (!(out.lowFreqFactor > 0 && out.highFreqFactor > out.lowFreqFactor)) {
    return "does not follow Llama 3's rule (no consistent low/high frequency factors)";
  }
  const again = llama3Divisors(out, headDim, theta);
  for (let i = 0; i < half; i++) {
    if (!close(again[i]!, divisors[i]!)) return `entry ${i} (${divisors[i]}) does not follow Llama 3's rule`;
  }
  return out;
}

/** The divisors Llama 3 scaling applies to each RoPE frequency (as llama.cpp's rope_freqs holds them). */
export function llama3Divisors(
  s: Extract<RopeScaling, { type: "llama3" }>,
  headDim: number,
  theta: number,
): Float64Array {
  const out = new Float64Array(headDim / 2);
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let i = 0; i < out.length; i++) {
    const wavelen = (2 * Math.PI) / theta ** (-(2 * i) / headDim);
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

/** A file's RoPE scaling as llama.cpp reads it for `arch` (null: none), or a clear error. */
export function ropeScaling(meta: Meta, arch: string, g: GgufFile, headDim: number): RopeScaling | null {
  if (g.header.tensors.has("rope_factors_long.weight") || g.header.tensors.has("rope_factors_short.weight")) {
    if (arch !== "phi3")
      throw new GgufError(
        meta.file,
        `LongRoPE factors (rope_factors_long / rope_factors_short) in the ${arch} architecture are not supported (phi3's are)`,
      );
    return longRopeScaling(meta, arch, g, headDim);
  }
  if (g.header.tensors.has("rope_freqs.weight")) return llama3Scaling(meta, arch, g, headDim);
  const type = meta.get(`${arch}.rope.scaling.type`);
  if (type === undefined || type === "none") return null;
  if (type === "yarn") return yarnScaling(meta, arch);
  if (type !== "linear") {
    throw new GgufError(
      meta.file,
      `${arch}.rope.scaling.type "${String(type)}" is not supported (linear and yarn are)`,
    );
  }
  const factor = meta.num(`${arch}.rope.scaling.factor`);
  if (factor === undefined || factor <= 0)
    throw new GgufError(meta.file, `linear RoPE scaling needs ${arch}.rope.scaling.factor`);
  return factor === 1 ? null : { type: "linear", factor };
}

/**
 * YaRN as the file states it for llama.cpp's rope_yarn: a ramp between the dims that turn
 * yarn_beta_fast and yarn_beta_slow times over the original context (32 and 1 unless stated;
 * always floored and ceiled), cos/sin scaled by mscale(factor) = 0.1 · ln(factor) + 1 times the
 * file's attn_factor. The DeepSeek-style log multiplier and an extrapolation mix other than 1
 * change that in ways no architecture the engine runs uses, and are refused.
 */
function yarnScaling(meta: Meta, arch: string): RopeScaling {
  const k = (name: string) => `${arch}.rope.scaling.${name}`;
  const factor = meta.num(k("factor"));
  if (factor === undefined || !(factor > 0))
    throw new GgufError(meta.file, `YaRN RoPE scaling needs a positive ${k("factor")}`);
  const logMul = meta.num(k("yarn_log_multiplier")) ?? 0;
  if (logMul !== 0)
    throw new GgufError(
      meta.file,
      `${k("yarn_log_multiplier")} = ${logMul} is not supported (DeepSeek's YaRN magnitude)`,
    );
  const ext = meta.num(k("yarn_ext_factor"));
  if (ext !== undefined && ext !== 1 && ext >= 0)
    throw new GgufError(
      meta.file,
      `${k("yarn_ext_factor")} = ${ext} is not supported (only YaRN's full ramp, 1)`,
    );
  // llama.cpp's converter writes a model's own attention factor here; llama.cpp releases disagree
  // on it (older ones multiply it into the magnitude, newer ones replace it by mscale(factor)).
  const yarnAttn = meta.num(k("yarn_attn_factor"));
  if (yarnAttn !== undefined && yarnAttn !== 1)
    throw new GgufError(
      meta.file,
      `${k("yarn_attn_factor")} = ${yarnAttn} is not supported (llama.cpp releases apply it differently; ${k("attn_factor")} is)`,
    );
  const betaFast = meta.num(k("yarn_beta_fast")) ?? 32;
  const betaSlow = meta.num(k("yarn_beta_slow")) ?? 1;
  if (!(betaFast > betaSlow && betaSlow > 0))
    throw new GgufError(
      meta.file,
      `${k("yarn_beta_fast")} (${betaFast}) must exceed ${k("yarn_beta_slow")} (${betaSlow}) > 0`,
    );
  return {
    type: "yarn",
    factor,
    originalMaxPositionEmbeddings:
      meta.num(k("original_context_length")) ?? meta.need(`${arch}.context_length`),
    betaFast,
    betaSlow,
    attentionFactor: yarnMscale(factor) * (meta.num(k("attn_factor")) ?? 1),
    truncate: true,
  };
}

/**
 * Phi-3's LongRoPE: the short and long factor tables, the original context length and the
 * attention factor (1 where the file states none, as llama.cpp takes it). llama.cpp applies one
 * table to every position, the long one once the context it is given exceeds the original length;
 * the engine switches tables at that position, as it does for the same model from safetensors.
 */
function longRopeScaling(meta: Meta, arch: string, g: GgufFile, headDim: number): RopeScaling {
  const table = (name: string): number[] => {
    const info = g.header.tensors.get(name);
    if (info === undefined)
      throw new GgufError(meta.file, `LongRoPE needs both factor tables: missing "${name}"`);
    if (info.typeName !== "F32" || info.shape.length !== 1 || info.shape[0] !== headDim / 2)
      throw new GgufError(
        meta.file,
        `tensor "${name}" is ${info.typeName} [${info.shape.join(", ")}], want F32 [${headDim / 2}] (half the rotated dimensions)`,
      );
    // As the metadata's floats: the decimals the writer meant (1.05, not 1.0499999523).
    return Array.from(new Float32Array(g.readBytes(name).slice().buffer), shortestF32);
  };
  return {
    type: "longrope",
    shortFactor: table("rope_factors_short.weight"),
    longFactor: table("rope_factors_long.weight"),
    originalMaxPositionEmbeddings: meta.need(`${arch}.rope.scaling.original_context_length`),
    attentionFactor: meta.num(`${arch}.rope.scaling.attn_factor`) ?? 1,
  };
}

/** Llama 3 scaling recovered from the rope_freqs tensor (llama3FromRopeFreqs, above), or a clear error. */
function llama3Scaling(meta: Meta, arch: string, g: GgufFile, headDim: number): RopeScaling {
  const info = g.tensor("rope_freqs.weight");
  if (info.typeName !== "F32") {
    throw new GgufError(meta.file, `tensor "rope_freqs.weight" has type ${info.typeName} (want F32)`);
  }
  const divisors = tensorDataOver("f32", g.readBytes(info.name));
  const original =
    meta.num(`${arch}.rope.scaling.original_context_length`) ?? meta.need(`${arch}.context_length`);
  const theta = meta.num(`${arch}.rope.freq_base`) ?? 10000;
  const s = llama3FromRopeFreqs(divisors, headDim, theta, original);
  if (typeof s === "string") {
    throw new GgufError(meta.file, `tensor "rope_freqs.weight" (Llama 3 RoPE frequency divisors) ${s}`);
  }
  return s;
}
