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
  let max = 0;
  for (let j = 0; j < 32; j++) if (Math.abs(x[xo + j]!) > Math.abs(max)) max = x[xo + j]!;
  const d = putHalf(out, o, max / -8);
  const q = (j: number) => (d === 0 ? 8 : clamp(nearest(x[xo + j]! / d) + 8, 0, 15));
  for (let j = 0; j < 16; j++) out[o + 2 + j] = q(j) | (q(j + 16) << 4);
}

/**
 * Q4_K: 8 sub-blocks of 32, each x ≈ d·sc·q − dmin·m with q in 0..15 and six-bit sc, m under the
 * block's f16 d and dmin: a sub-block's scale spans its range (min clamped to ≤ 0), its min the
 * negated minimum.
 */
function q4_K(x: Float32Array, xo: number, out: Uint8Array, o: number): void {
  const scales: number[] = [];
  const mins: number[] = [];
  for (let j = 0; j < 8; j++) {
    let lo = 0;
    let hi = 0;
    for (let l = 0; l < 32; l++) {
      lo = Math.min(lo, x[xo + j * 32 + l]!);
      hi = Math.max(hi, x[xo + j * 32 + l]!);
    }
    mins.push(-lo);
    scales.push((hi - lo) / 15);
  }
  const d = putHalf(out, o, Math.max(...scales) / 63);
  const dmin = putHalf(out, o + 2, Math.max(...mins) / 63);
  const sc = scales.map((s) => (d === 0 ? 0 : clamp(Math.ceil(s / d - 1e-6), 0, 63)));
  const m = mins.map((v) => (dmin === 0 ? 0 : clamp(Math.ceil(v / dmin - 1e-6), 0, 63)));
  for (let j = 0; j < 4; j++) {
    out[o + 4 + j] = sc[j]! | ((sc[j + 4]! >> 4) << 6);
    out[o + 8 + j] = m[j]! | ((m[j + 4]! >> 4) << 6);
    out[o + 12 + j] = (sc[j + 4]! & 15) | ((m[j + 4]! & 15) << 4);
  }
  for (let j = 0; j < 8; j++) {
    const step = Math.fround(d * sc[j]!);
    const lo = Math.fround(dmin * m[j]!);
    for (let l = 0; l < 32; l++) {
      const q = step === 0 ? 0 : clamp(nearest((x[xo + j * 32 + l]! + lo) / step), 0, 15);
      const byte = o + 16 + (j >> 1) * 32 + l;
      out[byte] = j & 1 ? out[byte]! | (q << 4) : q;
    }
  }
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

const QUANTIZERS: Readonly<Record<QuantType, { block: number; bytes: number; fn: typeof q8_0 }>> = {
  q8_0: { block: 32, bytes: 34, fn: q8_0 },
  q4_0: { block: 32, bytes: 18, fn: q4_0 },
  q4_k: { block: 256, bytes: 144, fn: q4_K },
  q6_k: { block: 256, bytes: 210, fn: q6_K },
};

/** Whether rows of `cols` values are whole blocks of the format. */
export function quantFits(type: QuantType, cols: number): boolean {
  return cols % QUANTIZERS[type].block === 0;
}

/** A row-major matrix of `cols` columns quantized to `type`, rows one after another. */
export function quantizeMatrix(type: QuantType, x: Float32Array, cols: number): Uint8Array {
  const { block, bytes, fn } = QUANTIZERS[type];
  if (!quantFits(type, cols) || x.length % cols !== 0) {
    throw new Error(`${type}: rows of ${cols} values are not whole ${block}-value blocks`);
  }
  const nb = x.length / block;
  const out = new Uint8Array(nb * bytes);
  for (let b = 0; b < nb; b++) fn(x, b * block, out, b * bytes);
  return out;
}
