import { GGML_TYPES } from "./gguf-reader.js";
import {
  bytesPerElement,
  f16ToF32,
  QUANT_TYPES,
  type QuantTensor,
  type QuantType,
  type WeightDType,
} from "./tensor.js";

/**
 * Dequantization of ggml's block formats to fp32, following the block layouts of ggml-quants
 * (little-endian, one block after another along each row):
 *   Q8_0 (34 bytes / 32): f16 d, int8 q[32]; x = d·q.
 *   Q4_0 (18 bytes / 32): f16 d, u8 qs[16]; x[j] = d·((qs[j] & 15) − 8), x[j+16] = d·((qs[j] >> 4) − 8).
 *   Q4_K (144 bytes / 256): f16 d, f16 dmin, u8 scales[12] (8 six-bit scales and mins), u8 qs[128];
 *     each 64-element chunk: low nibbles of 32 bytes, then their high nibbles; x = d·sc·q − dmin·m.
 *   Q6_K (210 bytes / 256): u8 ql[128], u8 qh[64], int8 scales[16], f16 d; each 128-element half:
 *     q = (4 low bits from ql) | (2 high bits from qh) − 32, x = d·scale·q, a scale per 16 elements.
 *   Q4_1 (20 bytes / 32): f16 d, f16 m, u8 qs[16]; Q4_0's nibbles, x = d·q + m.
 *   Q5_0 (22 bytes / 32): f16 d, u32 qh, u8 qs[16]; q = nibble | bit j of qh << 4 (element j),
 *     x = d·(q − 16).
 *   Q5_1 (24 bytes / 32): f16 d, f16 m, u32 qh, u8 qs[16]; Q5_0's q, x = d·q + m.
 *   Q5_K (176 bytes / 256): f16 d, f16 dmin, u8 scales[12] (as Q4_K), u8 qh[32], u8 qs[128]; Q4_K's
 *     nibbles, each 32-element block b taking bit b of qh[l] as its fifth bit.
 *   Q3_K (110 bytes / 256): u8 hmask[32], u8 qs[64], u8 scales[12] (16 six-bit scales, stored + 32),
 *     f16 d; block b (32 elements): q = (2 bits of qs[32·(b >> 2) + l] at 2·(b & 3)) | bit b of
 *     hmask[l] << 2, x = d·(sc − 32)·(q − 4), a scale per 16 elements.
 *   Q2_K (84 bytes / 256): u8 scales[16] (scale in the low nibble, min in the high), u8 qs[64],
 *     f16 d, f16 dmin; block b: q = 2 bits of qs[32·(b >> 2) + l] at 2·(b & 3), x = d·sc·q − dmin·m,
 *     a scale and min per 16 elements.
 *   IQ4_NL (18 bytes / 32): f16 d, u8 qs[16]; Q4_0's nibbles index a fixed table of 16 int8 levels
 *     (IQ4_NL_LEVELS), x = d·level.
 *   IQ4_XS (136 bytes / 256): f16 d, u16 scales_h, u8 scales_l[4], u8 qs[128]; block b (32 elements)
 *     has a six-bit scale ls (low four bits: nibble b % 2 of scales_l[b >> 1]; top two: bits 2b of
 *     scales_h) and 16 bytes of IQ4_NL nibbles at 8 + 16b; x = d·(ls − 32)·level.
 *   MXFP4 (17 bytes / 32): u8 e (E8M0), u8 qs[16]; Q4_0's nibbles index the e2m1 values doubled
 *     (MXFP4_LEVELS), x = 2^(e − 128)·level.
 * Products are rounded to fp32 step by step as ggml computes them.
 */

/** ggml's name of a block format ("Q4_K"), as GGUF's tensor table spells it. */
export type QuantName = Uppercase<QuantType>;

/** Values and bytes per block of each format the engine reads, from the GGUF reader's type table. */
export const QUANT_BLOCKS = Object.fromEntries(
  Object.values(GGML_TYPES)
    .filter((t) => (QUANT_TYPES as readonly string[]).includes(t.name.toLowerCase()))
    .map((t) => [t.name, { block: t.block, bytes: t.bytes }]),
) as Readonly<Record<QuantName, { block: number; bytes: number }>>;

const f = Math.fround;

function half(src: Uint8Array, at: number): number {
  return f16ToF32(src[at]! | (src[at + 1]! << 8));
}

function q8_0(src: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = half(src, at);
  for (let j = 0; j < 32; j++) out[o + j] = f(d * ((src[at + 2 + j]! << 24) >> 24));
}

/** The j-th six-bit scale and min of a Q4_K block's 12 packed bytes (ggml's get_scale_min_k4). */
export function scaleMinK4(j: number, s: Uint8Array, at: number): [number, number] {
  if (j < 4) return [s[at + j]! & 63, s[at + j + 4]! & 63];
  const sc = (s[at + j + 4]! & 15) | ((s[at + j - 4]! >> 6) << 4);
  const m = (s[at + j + 4]! >> 4) | ((s[at + j]! >> 6) << 4);
  return [sc, m];
}

function q4_K(src: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = half(src, at);
  const dmin = half(src, at + 2);
  const scales = at + 4;
  let q = at + 16;
  for (let chunk = 0, is = 0; chunk < 4; chunk++, is += 2) {
    const [sc1, m1] = scaleMinK4(is, src, scales);
    const [sc2, m2] = scaleMinK4(is + 1, src, scales);
    const d1 = f(d * sc1);
    const mm1 = f(dmin * m1);
    const d2 = f(d * sc2);
    const mm2 = f(dmin * m2);
    const base = o + chunk * 64;
    for (let l = 0; l < 32; l++) {
      out[base + l] = f(f(d1 * (src[q + l]! & 15)) - mm1);
      out[base + 32 + l] = f(f(d2 * (src[q + l]! >> 4)) - mm2);
    }
    q += 32;
  }
}

function q6_K(src: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = half(src, at + 208);
  for (let n = 0; n < 2; n++) {
    const ql = at + n * 64;
    const qh = at + 128 + n * 32;
    const sc = at + 192 + n * 8;
    const base = o + n * 128;
    for (let l = 0; l < 32; l++) {
      const is = l >> 4;
      const h = src[qh + l]!;
      const q1 = ((src[ql + l]! & 15) | ((h & 3) << 4)) - 32;
      const q2 = ((src[ql + l + 32]! & 15) | (((h >> 2) & 3) << 4)) - 32;
      const q3 = ((src[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
      const q4 = ((src[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
      const s = (k: number) => f(d * ((src[sc + is + k]! << 24) >> 24));
      out[base + l] = f(s(0) * q1);
      out[base + l + 32] = f(s(2) * q2);
      out[base + l + 64] = f(s(4) * q3);
      out[base + l + 96] = f(s(6) * q4);
    }
  }
}

/**
 * Q4_0, Q4_1, Q5_0 and Q5_1: f16 d, then f16 m (the _1 formats), then the fifth bits as a u32 (Q5_*),
 * then 16 bytes of nibbles (element j low, j + 16 high); x = d·(q − 8 or 16), or d·q + m.
 */
function nibbleFormat(
  min: boolean,
  five: boolean,
): (src: Uint8Array, at: number, out: Float32Array, o: number) => void {
  const offset = min ? 0 : five ? 16 : 8;
  return (src, at, out, o) => {
    const d = half(src, at);
    const m = min ? half(src, at + 2) : 0;
    const p = at + (min ? 4 : 2);
    const h = five ? (src[p]! | (src[p + 1]! << 8) | (src[p + 2]! << 16) | (src[p + 3]! << 24)) >>> 0 : 0;
    const qs = p + (five ? 4 : 0);
    for (let j = 0; j < 16; j++) {
      const b = src[qs + j]!;
      const lo = (b & 15) | (((h >>> j) & 1) << 4);
      const hi = (b >> 4) | (((h >>> (j + 16)) & 1) << 4);
      out[o + j] = min ? f(f(d * lo) + m) : f(d * (lo - offset));
      out[o + j + 16] = min ? f(f(d * hi) + m) : f(d * (hi - offset));
    }
  };
}
const q4_0 = nibbleFormat(false, false);
const q4_1 = nibbleFormat(true, false);
const q5_0 = nibbleFormat(false, true);
const q5_1 = nibbleFormat(true, true);

function q5_K(src: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = half(src, at);
  const dmin = half(src, at + 2);
  const qh = at + 16;
  for (let b = 0; b < 8; b++) {
    const [sc, m] = scaleMinK4(b, src, at + 4);
    const ds = f(d * sc);
    const mm = f(dmin * m);
    const qs = at + 48 + (b >> 1) * 32;
    for (let l = 0; l < 32; l++) {
      const nib = b & 1 ? src[qs + l]! >> 4 : src[qs + l]! & 15;
      out[o + b * 32 + l] = f(f(ds * (nib | (((src[qh + l]! >> b) & 1) << 4))) - mm);
    }
  }
}

/** Q3_K's 16 six-bit scales (as stored, 0..63) from its 12 packed bytes at `at`. */
function scalesK3(src: Uint8Array, at: number): number[] {
  return Array.from({ length: 16 }, (_, i) => {
    const low = i < 8 ? src[at + i]! & 15 : src[at + i - 8]! >> 4;
    return low | (((src[at + 8 + (i % 4)]! >> (2 * (i >> 2))) & 3) << 4);
  });
}

function q3_K(src: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = half(src, at + 108);
  const sc = scalesK3(src, at + 96);
  for (let b = 0; b < 8; b++) {
    const qs = at + 32 + (b >> 2) * 32;
    const shift = 2 * (b & 3);
    for (let l = 0; l < 32; l++) {
      const q = ((src[qs + l]! >> shift) & 3) | (((src[at + l]! >> b) & 1) << 2);
      out[o + b * 32 + l] = f(f(d * (sc[2 * b + (l >> 4)]! - 32)) * (q - 4));
    }
  }
}

function q2_K(src: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = half(src, at + 80);
  const dmin = half(src, at + 82);
  for (let b = 0; b < 8; b++) {
    const qs = at + 16 + (b >> 2) * 32;
    const shift = 2 * (b & 3);
    for (let l = 0; l < 32; l++) {
      const s = src[at + 2 * b + (l >> 4)]!;
      const q = (src[qs + l]! >> shift) & 3;
      out[o + b * 32 + l] = f(f(f(d * (s & 15)) * q) - f(dmin * (s >> 4)));
    }
  }
}

/** IQ4_NL's 16 levels, denser near zero (ggml's kvalues_iq4nl). */
export const IQ4_NL_LEVELS: readonly number[] = [
  -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/** 32 values from 16 nibble bytes at src[qs..] (Q4_0's order), each d times the level it indexes (IQ4_NL's, or `levels`). */
function levels32(
  src: Uint8Array,
  qs: number,
  d: number,
  out: Float32Array,
  o: number,
  levels: readonly number[] = IQ4_NL_LEVELS,
): void {
  for (let j = 0; j < 16; j++) {
    const b = src[qs + j]!;
    out[o + j] = f(d * levels[b & 15]!);
    out[o + j + 16] = f(d * levels[b >> 4]!);
  }
}

function iq4_nl(src: Uint8Array, at: number, out: Float32Array, o: number): void {
  levels32(src, at + 2, half(src, at), out, o);
}

/** MXFP4's 16 levels: the e2m1 values (0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives) doubled. */
export const MXFP4_LEVELS: readonly number[] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

function mxfp4(src: Uint8Array, at: number, out: Float32Array, o: number): void {
  // The E8M0 scale, halved for the doubled levels.
  levels32(src, at + 1, 2 ** (src[at]! - 128), out, o, MXFP4_LEVELS);
}

/** IQ4_XS's six-bit scale of 32-value block b (0..63 as stored; the scale is d·(ls − 32)). */
function iq4xsScale(src: Uint8Array, at: number, b: number): number {
  const high = ((src[at + 2]! | (src[at + 3]! << 8)) >> (2 * b)) & 3;
  return ((src[at + 4 + (b >> 1)]! >> (4 * (b & 1))) & 15) | (high << 4);
}

function iq4_xs(src: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = half(src, at);
  for (let b = 0; b < 8; b++)
    levels32(src, at + 8 + 16 * b, f(d * (iq4xsScale(src, at, b) - 32)), out, o + 32 * b);
}

const DEQUANT: Readonly<Record<QuantName, typeof q8_0>> = {
  Q8_0: q8_0,
  Q4_0: q4_0,
  Q4_K: q4_K,
  Q6_K: q6_K,
  Q4_1: q4_1,
  Q5_0: q5_0,
  Q5_1: q5_1,
  Q5_K: q5_K,
  Q3_K: q3_K,
  Q2_K: q2_K,
  IQ4_NL: iq4_nl,
  IQ4_XS: iq4_xs,
  MXFP4: mxfp4,
};

export function isQuantName(name: string): name is QuantName {
  return Object.hasOwn(QUANT_BLOCKS, name);
}

/** Dequantizes `count` elements stored as `type` blocks in `src` into fp32. */
export function dequantize(type: QuantName, src: Uint8Array, count: number): Float32Array {
  const { block, bytes } = QUANT_BLOCKS[type];
  if (count % block !== 0 || src.length !== (count / block) * bytes) {
    throw new Error(`${type}: ${src.length} bytes do not hold ${count} elements in ${block}-element blocks`);
  }
  const out = new Float32Array(count);
  const fn = DEQUANT[type];
  for (let b = 0; b < count / block; b++) fn(src, b * bytes, out, b * block);
  return out;
}

/** ggml's name of an engine quant type ("q4_k" -> "Q4_K"). */
export function ggmlQuantName(type: QuantType): QuantName {
  return type.toUpperCase() as QuantName;
}

/** The engine's name of a ggml quant type ("Q4_K" -> "q4_k"). */
export function quantTypeOf(name: QuantName): QuantType {
  return name.toLowerCase() as QuantType;
}

/** Bytes one row of `cols` values takes in a block format (cols must be whole blocks). */
export function quantRowBytes(type: QuantType, cols: number): number {
  const { block, bytes } = QUANT_BLOCKS[ggmlQuantName(type)];
  if (cols % block !== 0)
    throw new Error(`${type}: a row of ${cols} values is not whole ${block}-value blocks`);
  return (cols / block) * bytes;
}

/** Bytes one row of `cols` values takes in any stored type (what a product reads per row). */
export function weightRowBytes(dtype: WeightDType, cols: number): number {
  return (QUANT_TYPES as readonly string[]).includes(dtype)
    ? quantRowBytes(dtype as QuantType, cols)
    : cols * bytesPerElement(dtype as "f32" | "f16" | "bf16");
}

/** A quantized matrix's values as fp32 (tests, references, small tensors). */
export function dequantizeTensor(t: QuantTensor): Float32Array {
  let count = 1;
  for (const d of t.shape) count *= d;
  return dequantize(ggmlQuantName(t.dtype), t.data, count);
}

/** Row `row` of a quantized [*, cols] matrix into out[0, cols), without allocating. */
export function dequantizeRow(
  type: QuantType,
  src: Uint8Array,
  row: number,
  cols: number,
  out: Float32Array,
): void {
  const name = ggmlQuantName(type);
  const { block, bytes } = QUANT_BLOCKS[name];
  const fn = DEQUANT[name];
  const at = row * quantRowBytes(type, cols);
  for (let b = 0; b < cols / block; b++) fn(src, at + b * bytes, out, b * block);
}
