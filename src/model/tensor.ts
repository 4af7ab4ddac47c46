/**
 * Tensors as the loaders hand them over: named, shaped, in their stored precision.
 * f16/bf16 data stays as raw 16-bit words (Uint16Array) so a bf16 model costs 2 bytes per weight
 * in memory, never a silent blow-up to fp32. Buffers are SharedArrayBuffer-backed so worker
 * threads can use the same weights without a copy.
 */
export type DType = "f32" | "f16" | "bf16";

export type TensorData = Float32Array | Uint16Array;

/**
 * ggml's block formats, kept as stored by the GGUF import (layouts in gguf-dequant.ts): matrices
 * whose rows are whole blocks, multiplied by the quantized kernels without widening.
 */
export type QuantType = (typeof QUANT_TYPES)[number];

/** Any stored weight type: floats, or a block format. */
export type WeightDType = DType | QuantType;

export const QUANT_TYPES = [
  "q8_0",
  "q4_0",
  "q4_k",
  "q6_k",
  "q4_1",
  "q5_0",
  "q5_1",
  "q5_k",
  "q3_k",
  "q2_k",
  "iq4_nl",
  "iq4_xs",
  "mxfp4",
] as const;

export interface FloatTensor {
  readonly name: string;
  readonly dtype: DType;
  /** Row-major shape, outermost first (a Linear weight is [outFeatures, inFeatures]). */
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** A matrix in a block format: `data` holds its blocks, row after row. */
export interface QuantTensor {
  readonly name: string;
  readonly dtype: QuantType;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

export type Tensor = FloatTensor | QuantTensor;

export function isQuantTensor(t: Tensor): t is QuantTensor {
  return (QUANT_TYPES as readonly string[]).includes(t.dtype);
}

/** The tensor itself if it is stored as floats, else a clear error naming it and the caller. */
export function floatTensor(t: Tensor, what: string): FloatTensor {
  if (isQuantTensor(t)) {
    throw new TypeError(`${what}: ${t.name} is stored as ${t.dtype}, which needs floats here`);
  }
  return t;
}

export function bytesPerElement(dtype: DType): number {
  return dtype === "f32" ? 4 : 2;
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * How many bytes past the start of a view its first 64-byte cache line begins: the native kernels
 * install this when they load (JavaScript cannot see addresses). Node's large buffers start 16
 * bytes past a page, so without it every 64-byte vector load of a weight or KV row straddles two
 * lines (docs/BENCHMARKS.md, "Weights on cache lines").
 */
let lineGap: ((view: Uint8Array) => number) | null = null;

/** Installs (or, with null, removes) the function that places shared storage on cache lines. */
export function setLineGap(gap: ((view: Uint8Array) => number) | null): void {
  lineGap = gap;
}

/** Storage this small is not worth the 64 spare bytes. */
const MIN_ALIGNED_BYTES = 1024;

/**
 * Zeroed SharedArrayBuffer-backed bytes, starting on a 64-byte cache line once the native kernels
 * have loaded (the view then has a byteOffset of up to 63 into a buffer 64 bytes longer).
 */
export function allocSharedBytes(bytes: number): Uint8Array {
  if (lineGap === null || bytes < MIN_ALIGNED_BYTES) return new Uint8Array(new SharedArrayBuffer(bytes));
  const sab = new SharedArrayBuffer(bytes + 64);
  const gap = lineGap(new Uint8Array(sab, 0, 1));
  return new Uint8Array(sab, gap, bytes);
}

/** `bytes` seen as elements of `dtype` (f32, or the 16-bit formats), sharing its storage. */
export function tensorDataOver(dtype: "f32", bytes: Uint8Array): Float32Array;
export function tensorDataOver(dtype: DType, bytes: Uint8Array): TensorData;
export function tensorDataOver(dtype: DType, bytes: Uint8Array): TensorData {
  const n = bytes.byteLength / bytesPerElement(dtype);
  return dtype === "f32"
    ? new Float32Array(bytes.buffer, bytes.byteOffset, n)
    : new Uint16Array(bytes.buffer, bytes.byteOffset, n);
}

/** Allocates zeroed storage of the right element type on a SharedArrayBuffer (see allocSharedBytes). */
export function allocTensorData(dtype: "f32", count: number): Float32Array;
export function allocTensorData(dtype: DType, count: number): TensorData;
export function allocTensorData(dtype: DType, count: number): TensorData {
  return tensorDataOver(dtype, allocSharedBytes(count * bytesPerElement(dtype)));
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

export function bf16ToF32(bits: number): number {
  u32Scratch[0] = bits << 16;
  return f32Scratch[0]!;
}

/** Round-to-nearest-even conversion, as PyTorch does. */
export function f32ToBf16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff; // NaN stays NaN
  const rounding = 0x7fff + ((x >>> 16) & 1);
  return ((x + rounding) >>> 16) & 0xffff;
}

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Round-to-nearest-even fp32 → fp16. */
export function f32ToF16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** Reads element i of any tensor as a JS number (slow; for tests, references and small tensors). */
export function readElement(dtype: DType, data: TensorData, i: number): number {
  if (dtype === "f32") return data[i]!;
  return dtype === "bf16" ? bf16ToF32(data[i]!) : f16ToF32(data[i]!);
}

/** Widens a (small) float tensor to fp32, e.g. norm weights and biases; a block format is refused. */
export function toFloat32(tensor: Tensor): Float32Array {
  const t = floatTensor(tensor, "toFloat32");
  if (t.dtype === "f32") return t.data as Float32Array;
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < out.length; i++) out[i] = readElement(t.dtype, t.data, i);
  return out;
}

/** Vectors of one length (per-expert biases) as the rows of one fp32 [vectors, length] array. */
export function stackFloat32(vectors: readonly Tensor[]): Float32Array {
  const rows = vectors.map(toFloat32);
  const width = rows[0]?.length ?? 0;
  const out = new Float32Array(rows.length * width);
  rows.forEach((r, i) => {
    out.set(r, i * width);
  });
  return out;
}
