import type { RopeScaling } from "./config.js";

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
