import type { ModelConfig, RopeScaling } from "../model/config.js";
import type { RopeTables } from "./backend.js";

/**
 * Per-pair inverse frequencies theta^(-2i/dim), i < dim/2, after the checkpoint's
 * frequency scaling. "linear" divides positions by `factor`, which is the same as dividing every
 * frequency by it. "llama3" follows Meta's rule (Hugging Face `_compute_llama3_parameters`):
 * wavelengths longer than original_max / low_freq_factor are slowed by `factor`, those shorter
 * than original_max / high_freq_factor are kept, and the band between is interpolated.
 * "longrope" divides frequency i by its factor: the short list unless `long` is set. "yarn"
 * (Hugging Face `_compute_yarn_parameters`, llama.cpp's rope_yarn) keeps the frequencies that
 * turn many times within the original context, divides the slow ones by `factor`, and ramps
 * linearly between (yarnRamp).
 */
export function ropeInvFreq(config: ModelConfig, long = false): Float64Array {
  const { ropeTheta, ropeScaling } = config;
  // dim: the rotated dims of a head (all of them but with partial rotary embeddings).
  const dim = config.rotaryDim ?? config.headDim;
  if (!Number.isInteger(dim) || dim <= 0 || dim % 2 !== 0)
    throw new RangeError(
      `rope: the rotary dimension (rotaryDim, else headDim) must be a positive even integer, got ${dim}`,
    );
  const half = dim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = ropeTheta ** (-(2 * i) / dim);
  if (ropeScaling === null) return inv;
  if (ropeScaling.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] = inv[i]! / ropeScaling.factor;
    return inv;
  }
  if (ropeScaling.type === "longrope") {
    const factors = long ? ropeScaling.longFactor : ropeScaling.shortFactor;
    for (let i = 0; i < half; i++) inv[i] = inv[i]! / factors[i]!;
    return inv;
  }
  if (ropeScaling.type === "yarn") {
    const [low, high] = yarnRamp(ropeScaling, dim, ropeTheta);
    for (let i = 0; i < half; i++) {
      // 1 keeps frequency i as it is (it turns often enough within the original context), 0 divides it by factor.
      const keep = 1 - Math.min(1, Math.max(0, (i - low) / (high - low)));
      inv[i] = inv[i]! * (keep + (1 - keep) / ropeScaling.factor);
    }
    return inv;
  }
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldLen } = ropeScaling;
  const lowFreqWavelen = oldLen / lowFreqFactor;
  const highFreqWavelen = oldLen / highFreqFactor;
  for (let i = 0; i < half; i++) {
    const f = inv[i]!;
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) continue; // high frequency: unchanged
    if (wavelen > lowFreqWavelen) {
      inv[i] = f / factor; // low frequency: fully scaled
      continue;
    }
    const smooth = (oldLen / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    inv[i] = (1 - smooth) * (f / factor) + smooth * f;
  }
  return inv;
}

/**
 * YaRN's ramp over frequency indices: the (fractional) index of the frequency that turns betaFast
 * times over the original context, and of the one that turns betaSlow times, floored and ceiled
 * where `truncate`, kept within [0, dim − 1] and at least 0.001 apart.
 */
function yarnRamp(s: Extract<RopeScaling, { type: "yarn" }>, dim: number, theta: number): [number, number] {
  const indexFor = (turns: number) =>
    (dim * Math.log(s.originalMaxPositionEmbeddings / (turns * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = indexFor(s.betaFast);
  let high = indexFor(s.betaSlow);
  if (s.truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  return [low, high === low ? high + 0.001 : high];
}

/**
 * cos/sin tables [maxPos, rotaryDim / 2] (rotaryDim: headDim but with partial rotary embeddings)
 * for positions 0..maxPos-1 (angle = pos * invFreq[i]).
 * LongRoPE picks its frequencies per position: short factors below the original context, long
 * ones from there on, with cos and sin scaled by the attention factor everywhere. transformers
 * picks them per forward pass instead (long for every token once any position in the batch
 * reaches the original context); per position is the same for decoding past it, and keeps a
 * token's rotation independent of what it is batched with.
 */
export function buildRopeTables(config: ModelConfig, maxPos: number): RopeTables {
  if (!Number.isInteger(maxPos) || maxPos <= 0)
    throw new RangeError(`buildRopeTables: maxPos must be a positive integer, got ${maxPos}`);
  const scaling = config.ropeScaling;
  const short = ropeInvFreq(config);
  const longRope = scaling?.type === "longrope" ? scaling : null;
  const long = longRope ? ropeInvFreq(config, true) : short;
  const switchAt = longRope ? longRope.originalMaxPositionEmbeddings : Number.POSITIVE_INFINITY;
  const magnitude = scaling?.type === "longrope" || scaling?.type === "yarn" ? scaling.attentionFactor : 1;
  const half = short.length;
  const cos = new Float32Array(new SharedArrayBuffer(maxPos * half * 4));
  const sin = new Float32Array(new SharedArrayBuffer(maxPos * half * 4));
  for (let p = 0; p < maxPos; p++) {
    const inv = p < switchAt ? short : long;
    for (let i = 0; i < half; i++) {
      const angle = p * inv[i]!;
      cos[p * half + i] = magnitude * Math.cos(angle);
      sin[p * half + i] = magnitude * Math.sin(angle);
    }
  }
  return { cos, sin, maxPos, half };
}
