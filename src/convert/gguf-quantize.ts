import { ggmlQuantName, IQ4_NL_LEVELS, MXFP4_LEVELS, QUANT_BLOCKS } from "../model/gguf-dequant.js";
import { f16ToF32, f32ToF16, type QuantType } from "../model/tensor.js";

/**
 * Quantizers into ggml's block formats (layouts in model/gguf-dequant.ts), for `convert --to gguf
 * --quantize`. Each works on whole rows (a row is whole blocks; blocks never span rows) and writes
 * the scales as f16 as the format stores them, quantizing the values against the stored (rounded)
 * scales so the decoded values are the nearest the block can hold. Simple closed-form scales
 * (no search over candidate scales as llama.cpp's K-quant quantizers do): a little more error
 * per block, the same format.
 */

/** Stores an f16 at `at` and returns the value it holds. */
function putHalf(b: Uint8Array, at: number, v: number): number {
  const h = f32ToF16(v);
  b[at] = h & 255;
  b[at + 1] = h >> 8;
  return f16ToF32(h);
}

const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));
/** Nearest integer, ties away from zero (C's roundf, as ggml rounds). */
const nearest = (v: number) => Math.sign(v) * Math.floor(Math.abs(v) + 0.5);

/** The value of largest magnitude among x[at..at + n), with its sign. */
function signedMax(x: Float32Array, at: number, n: number): number {
  let max = 0;
  for (let j = 0; j < n; j++) if (Math.abs(x[at + j]!) > Math.abs(max)) max = x[at + j]!;
  return max;
}

function maxAbs(x: Float32Array, at: number, n: number): number {
  let m = 0;
  for (let j = 0; j < n; j++) m = Math.max(m, Math.abs(x[at + j]!));
  return m;
}

/** Q8_0: per 32 values d = max|x| / 127, q = x / d. */
function q8_0(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[xo + j]!));
  const d = putHalf(out, o, amax / 127);
  for (let j = 0; j < 32; j++)
    out[o + 2 + j] = (d === 0 ? 0 : clamp(nearest(x[xo + j]! / d), -127, 127)) & 255;
}

/** Q4_0: per 32 values d = (the value of largest magnitude) / −8, q = x / d + 8 in 0..15. */
function q4_0(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const max = signedMax(x, xo, 32);
  const d = putHalf(out, o, max / -8);
  const q = (j: number) => (d === 0 ? 8 : clamp(nearest(x[xo + j]! / d) + 8, 0, 15));
  for (let j = 0; j < 16; j++) out[o + 2 + j] = q(j) | (q(j + 16) << 4);
}

/**
 * The K-quants' scales and mins over `n` sub-blocks of `size` values at x[xo..]: each sub-block's
 * min is its negated minimum (clamped to ≥ 0) in steps of dmin, its scale spans its top from that
 * stored (rounded-up) min over `top` steps, in steps of d; both as integers up to `codes`, rounded
 * up, and d and dmin stored as f16 at `dAt` and `dminAt`. So no value is clamped at either end.
 */
function scalesAndMins(
  x: Float32Array,
  xo: number,
  n: number,
  size: number,
  top: number,
  codes: number,
  out: Uint8Array,
  dAt: number,
  dminAt: number,
): { d: number; dmin: number; sc: number[]; m: number[] } {
  const highs: number[] = [];
  const mins: number[] = [];
  for (let j = 0; j < n; j++) {
    let lo = 0;
    let hi = 0;
    for (let l = 0; l < size; l++) {
      lo = Math.min(lo, x[xo + j * size + l]!);
      hi = Math.max(hi, x[xo + j * size + l]!);
    }
    mins.push(-lo);
    highs.push(hi);
  }
  const dmin = putHalf(out, dminAt, Math.max(...mins) / codes);
  const m = mins.map((v) => (dmin === 0 ? 0 : clamp(Math.ceil(v / dmin - 1e-6), 0, codes)));
  const scales = highs.map((hi, j) => (hi + Math.fround(dmin * m[j]!)) / top);
  const d = putHalf(out, dAt, Math.max(...scales) / codes);
  const sc = scales.map((v) => (d === 0 ? 0 : clamp(Math.ceil(v / d - 1e-6), 0, codes)));
  return { d, dmin, sc, m };
}

/**
 * Q4_K and Q5_K: 8 sub-blocks of 32, each x ≈ d·sc·q − dmin·m with q in 0..2^bits − 1 and six-bit
 * sc, m under the block's f16 d and dmin (scalesAndMins). Q5_K keeps each q's fifth bit in qh (bit
 * j of qh[l] for sub-block j) and its nibbles after it.
 */
function kQuant(bits: 4 | 5, x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const top = (1 << bits) - 1;
  const { d, dmin, sc, m } = scalesAndMins(x, xo, 8, 32, top, 63, out, o, o + 2);
  for (let j = 0; j < 4; j++) {
    out[o + 4 + j] = sc[j]! | ((sc[j + 4]! >> 4) << 6);
    out[o + 8 + j] = m[j]! | ((m[j + 4]! >> 4) << 6);
    out[o + 12 + j] = (sc[j + 4]! & 15) | ((m[j + 4]! & 15) << 4);
  }
  const qs = o + (bits === 5 ? 48 : 16);
  if (bits === 5) out.fill(0, o + 16, o + 48);
  for (let j = 0; j < 8; j++) {
    const step = Math.fround(d * sc[j]!);
    const lo = Math.fround(dmin * m[j]!);
    for (let l = 0; l < 32; l++) {
      const q = step === 0 ? 0 : clamp(nearest((x[xo + j * 32 + l]! + lo) / step), 0, top);
      const byte = qs + (j >> 1) * 32 + l;
      out[byte] = j & 1 ? out[byte]! | ((q & 15) << 4) : q & 15;
      if (bits === 5) out[o + 16 + l] = out[o + 16 + l]! | ((q >> 4) << j);
    }
  }
}

const q4_K = (x: Float32Array, xo: number, out: Uint8Array, o: number) => kQuant(4, x, xo, out, o);
const q5_K = (x: Float32Array, xo: number, out: Uint8Array, o: number) => kQuant(5, x, xo, out, o);

/**
 * Q4_1 and Q5_1: per 32 values x ≈ d·q + m with m the minimum and d its range over 2^bits − 1;
 * Q5_1 keeps the fifth bits in a u32 after m (bit j for value j).
 */
function minQuant(bits: 4 | 5, x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const top = (1 << bits) - 1;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < 32; j++) {
    lo = Math.min(lo, x[xo + j]!);
    hi = Math.max(hi, x[xo + j]!);
  }
  const d = putHalf(out, o, (hi - lo) / top);
  const m = putHalf(out, o + 2, lo);
  const q = (j: number) => (d === 0 ? 0 : clamp(nearest((x[xo + j]! - m) / d), 0, top));
  writeNibbles(bits, q, out, o + 4);
}

/** Q5_0: per 32 values d = (the value of largest magnitude) / −16, q = x / d + 16 in 0..31. */
function q5_0(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const max = signedMax(x, xo, 32);
  const d = putHalf(out, o, max / -16);
  writeNibbles(5, (j) => (d === 0 ? 16 : clamp(nearest(x[xo + j]! / d) + 16, 0, 31)), out, o + 2);
}

/** 32 values' low nibbles (j with j + 16), after a u32 of their fifth bits when there are 5. */
function writeNibbles(bits: 4 | 5, q: (j: number) => number, out: Uint8Array, at: number): void {
  const qs = bits === 5 ? at + 4 : at;
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const a = q(j);
    const b = q(j + 16);
    out[qs + j] = (a & 15) | ((b & 15) << 4);
    qh |= ((a >> 4) << j) | ((b >> 4) << (j + 16));
  }
  if (bits === 5) for (let k = 0; k < 4; k++) out[at + k] = (qh >>> (8 * k)) & 255;
}

/**
 * Q6_K: 16 sub-blocks of 16, x ≈ d·sc·q with q in −32..31 and int8 sc under the block's f16 d: a
 * sub-block's scale maps its largest magnitude to 31 (symmetric, so neither end is clamped).
 */
function q6_K(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const s: number[] = [];
  for (let j = 0; j < 16; j++) s.push(maxAbs(x, xo + j * 16, 16) / 31);
  const d = putHalf(out, o + 208, Math.max(...s) / 127);
  // Rounded up, so a sub-block's largest magnitude still fits in −31..31 (no clamping).
  const sc = s.map((v) => (d === 0 ? 0 : clamp(Math.ceil(v / d - 1e-6), 0, 127)));
  for (let j = 0; j < 16; j++) out[o + 192 + j] = sc[j]! & 255;
  const q = new Uint8Array(256);
  for (let e = 0; e < 256; e++) {
    const step = Math.fround(d * sc[e >> 4]!);
    q[e] = (step === 0 ? 0 : clamp(nearest(x[xo + e]! / step), -32, 31)) + 32;
  }
  for (let n = 0; n < 2; n++) {
    for (let l = 0; l < 32; l++) {
      const [q1, q2, q3, q4] = [0, 32, 64, 96].map((k) => q[n * 128 + k + l]!) as [
        number,
        number,
        number,
        number,
      ];
      out[o + n * 64 + l] = (q1 & 15) | ((q3 & 15) << 4);
      out[o + n * 64 + 32 + l] = (q2 & 15) | ((q4 & 15) << 4);
      out[o + 128 + n * 32 + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
    }
  }
}

/**
 * Q3_K: 16 sub-blocks of 16, x ≈ d·(sc − 32)·(q − 4) with q − 4 in −4..3 and a six-bit sc under the
 * block's f16 d (sc ≥ 32 here: a sub-block's scale maps its largest magnitude to 4 steps, so its
 * largest positive value may be clamped by up to one step); q's third bit in hmask, its low two
 * in qs.
 */
function q3_K(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const s: number[] = [];
  for (let j = 0; j < 16; j++) s.push(maxAbs(x, xo + j * 16, 16) / 4);
  const d = putHalf(out, o + 108, Math.max(...s) / 31);
  const sc = s.map((v) => (d === 0 ? 0 : clamp(Math.ceil(v / d - 1e-6), 0, 31)));
  out.fill(0, o, o + 108);
  sc.forEach((v, i) => {
    const stored = v + 32;
    out[o + 96 + (i < 8 ? i : i - 8)] |= (stored & 15) << (i < 8 ? 0 : 4);
    out[o + 104 + (i % 4)] |= (stored >> 4) << (2 * (i >> 2));
  });
  for (let e = 0; e < 256; e++) {
    const step = Math.fround(d * sc[e >> 4]!);
    const q = (step === 0 ? 0 : clamp(nearest(x[xo + e]! / step), -4, 3)) + 4;
    const b = e >> 5;
    const l = e & 31;
    out[o + 32 + (b >> 2) * 32 + l] |= (q & 3) << (2 * (b & 3));
    out[o + l] |= (q >> 2) << b;
  }
}

/**
 * Q2_K: 16 sub-blocks of 16, x ≈ d·sc·q − dmin·m with q in 0..3 and four-bit sc, m under the block's
 * f16 d and dmin (sized as Q4_K's).
 */
function q2_K(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const { d, dmin, sc, m } = scalesAndMins(x, xo, 16, 16, 3, 15, out, o + 80, o + 82);
  for (let j = 0; j < 16; j++) out[o + j] = sc[j]! | (m[j]! << 4);
  out.fill(0, o + 16, o + 80);
  for (let e = 0; e < 256; e++) {
    const j = e >> 4;
    const step = Math.fround(d * sc[j]!);
    const lo = Math.fround(dmin * m[j]!);
    const q = step === 0 ? 0 : clamp(nearest((x[xo + e]! + lo) / step), 0, 3);
    const b = e >> 5;
    out[o + 16 + (b >> 2) * 32 + (e & 31)] |= q << (2 * (b & 3));
  }
}

/** IQ4_NL: per 32 values d = (the value of largest magnitude) / −127, each value the nearest level. */
function iq4_nl(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const max = signedMax(x, xo, 32);
  levelNibbles(x, xo, putHalf(out, o, max / -127), out, o + 2);
}

/**
 * 32 values at x[xo..] as the nearest levels (IQ4_NL's, or `levels`) of scale d, 16 nibble bytes
 * at out[at..] (Q4_0's order).
 */
function levelNibbles(
  x: Float32Array,
  xo: number,
  d: number,
  out: Uint8Array,
  at: number,
  levels: readonly number[] = IQ4_NL_LEVELS,
): void {
  const q = (j: number) => {
    if (d === 0) return 8; // IQ4_NL's level 1 (MXFP4's −0): the nearest to zero
    const v = x[xo + j]! / d;
    let best = 0;
    for (let k = 1; k < 16; k++) if (Math.abs(levels[k]! - v) < Math.abs(levels[best]! - v)) best = k;
    return best;
  };
  for (let j = 0; j < 16; j++) out[at + j] = q(j) | (q(j + 16) << 4);
}

/**
 * IQ4_XS: each 32-value block's own scale s = (its value of largest magnitude) / −127 as IQ4_NL's;
 * d = (the super-block's largest s) / −32, so that block stores ls = 0, and every block's six-bit
 * ls − 32 = s / d rounded (clamped to −32..31); each value the nearest level of the stored scale.
 */
function iq4_xs(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const s = new Float64Array(8);
  let top = 0;
  for (let b = 0; b < 8; b++) {
    s[b] = signedMax(x, xo + 32 * b, 32) / -127;
    if (Math.abs(s[b]!) > Math.abs(top)) top = s[b]!;
  }
  const d = putHalf(out, o, top / -32);
  let high = 0;
  for (let b = 0; b < 8; b++) {
    const l = d === 0 ? 0 : clamp(nearest(s[b]! / d), -32, 31);
    const ls = l + 32;
    out[o + 4 + (b >> 1)] |= (ls & 15) << (4 * (b & 1));
    high |= (ls >> 4) << (2 * b);
    levelNibbles(x, xo + 32 * b, Math.fround(d * l), out, o + 8 + 16 * b);
  }
  out[o + 2] = high & 255;
  out[o + 3] = high >> 8;
}

/**
 * MXFP4 (the OCP microscaling rule, as ggml's reference quantizer applies it): the block's shared
 * scale is 2^(⌊log₂ max|x|⌋ − 2), stored as its E8M0 exponent; each value the nearest e2m1 level
 * (kept doubled, against half that scale), values past 6 scales clamped to it.
 */
function mxfp4(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const max = Math.abs(signedMax(x, xo, 32));
  const e = max > 0 ? clamp(Math.floor(Math.log2(max)) - 2 + 127, 0, 254) : 0;
  out[o] = e;
  levelNibbles(x, xo, 2 ** (e - 128), out, o + 1, MXFP4_LEVELS);
}

/** Each format's block writer (its block and byte sizes are the reader's: QUANT_BLOCKS). */
const QUANTIZERS: Readonly<Record<QuantType, typeof q8_0>> = {
  q8_0,
  q4_0,
  q4_k: q4_K,
  q6_k: q6_K,
  q4_1: (x, xo, out, o) => minQuant(4, x, xo, out, o),
  q5_0,
  q5_1: (x, xo, out, o) => minQuant(5, x, xo, out, o),
  q5_k: q5_K,
  q3_k: q3_K,
  q2_k: q2_K,
  iq4_nl,
  iq4_xs,
  mxfp4,
};

const blocksOf = (type: QuantType) => QUANT_BLOCKS[ggmlQuantName(type)];

/** Whether rows of `cols` values are whole blocks of the format. */
export function quantFits(type: QuantType, cols: number): boolean {
  return cols % blocksOf(type).block === 0;
}

/** A row-major matrix of `cols` columns quantized to `type`, rows one after another. */
export function quantizeMatrix(type: QuantType, x: Float32Array, cols: number): Uint8Array {
  const { block, bytes } = blocksOf(type);
  const fn = QUANTIZERS[type];
  if (!quantFits(type, cols) || x.length % cols !== 0) {
    throw new Error(`${type}: rows of ${cols} values are not whole ${block}-value blocks`);
  }
  const nb = x.length / block;
  const out = new Uint8Array(nb * bytes);
  for (let b = 0; b < nb; b++) fn(x, b * block, out, b * bytes);
  return out;
}
