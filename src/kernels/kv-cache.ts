import {
  allocSharedBytes,
  allocTensorData,
  bytesPerElement,
  type DType,
  readElement,
} from "../model/tensor.js";
import type { KvData, KvDType, KvLayerCache } from "./backend.js";

/** Every KV cache element type, as `--kv-dtype` and the attention-worker protocol name them. */
export const KV_DTYPES = ["f32", "f16", "bf16", "int8"] as const satisfies readonly KvDType[];

/**
 * int8 K and V rows are stored in groups of this many tokens of a block, interleaved (see
 * KvLayerCache), so an int8 cache's block size must be a multiple of it.
 */
export const INT8_GROUP = 4;

/** The KV dtype named by `name`, or a TypeError naming it and the choices. */
export function parseKvDtype(name: string, what: string): KvDType {
  if ((KV_DTYPES as readonly string[]).includes(name)) return name as KvDType;
  throw new TypeError(`${what}: unknown KV dtype "${name}" (expected ${KV_DTYPES.join(", ")})`);
}

/**
 * Bytes one token of one KV head takes in K and V together: the rows, and an int8 cache's two f32
 * scales.
 */
export function kvBytesPerHeadToken(dtype: KvDType, headDim: number): number {
  if (dtype === "int8") return 2 * (headDim + 4);
  return 2 * headDim * bytesPerElement(dtype);
}

/** Throws unless `blockSize` suits `dtype` (int8 needs whole groups of INT8_GROUP tokens). */
export function checkKvBlockSize(dtype: KvDType, blockSize: number): void {
  if (dtype === "int8" && blockSize % INT8_GROUP !== 0)
    throw new RangeError(
      `an int8 KV cache needs a block size that is a multiple of ${INT8_GROUP}, got ${blockSize}`,
    );
}

/** Zeroed storage for one layer's K or V of `elements` elements, on a SharedArrayBuffer. */
function allocKv(dtype: KvDType, elements: number): KvData {
  if (dtype === "int8") {
    const bytes = allocSharedBytes(elements);
    return new Int8Array(bytes.buffer, bytes.byteOffset, elements);
  }
  return allocTensorData(dtype, elements);
}

/** One layer's cache of `numBlocks` blocks; `advise` sees each large buffer before first use. */
export function allocKvLayer(
  dtype: KvDType,
  numBlocks: number,
  blockSize: number,
  nKvHeads: number,
  headDim: number,
  advise?: (data: KvData) => void,
): KvLayerCache {
  checkKvBlockSize(dtype, blockSize);
  const rows = numBlocks * nKvHeads * blockSize;
  const k = allocKv(dtype, rows * headDim);
  const v = allocKv(dtype, rows * headDim);
  advise?.(k);
  advise?.(v);
  const base = { dtype, numBlocks, blockSize, nKvHeads, headDim, k, v };
  if (dtype !== "int8") return base;
  const scales = () => allocTensorData("f32", rows);
  return { ...base, kScale: scales(), vScale: scales() };
}

/**
 * Element index of K element i of the token at `row` (its row index,
 * (block * nKvHeads + h) * blockSize + offset). Float caches store rows in order; int8 caches
 * store each group of INT8_GROUP tokens by quads of elements: the group's elements 4c..4c+3 of
 * its four tokens lie together, token by token (16 bytes; a last quad of w < 4 elements takes
 * 4w), so a 32-bit word holds four elements of one token and one vector several tokens' words.
 */
export function kvKeyIndex(dtype: KvDType, row: number, headDim: number, i: number): number {
  if (dtype !== "int8") return row * headDim + i;
  const lane = row % INT8_GROUP; // blockSize is a multiple of the group, so row and offset agree
  const quad = i - (i % 4);
  const width = Math.min(4, headDim - quad);
  return (row - lane) * headDim + quad * INT8_GROUP + lane * width + (i % 4);
}

/**
 * Element index of V element i of the token at `row`. Float caches store rows in order; int8
 * caches interleave each group of INT8_GROUP tokens element by element (element i of the four
 * tokens in one 32-bit word).
 */
export function kvValueIndex(dtype: KvDType, row: number, headDim: number, i: number): number {
  if (dtype !== "int8") return row * headDim + i;
  const lane = row % INT8_GROUP;
  return (row - lane) * headDim + i * INT8_GROUP + lane;
}

/** K element i of the token at `row`, widened (an int8 element times its row's scale). */
export function readKey(c: KvLayerCache, row: number, i: number): number {
  const at = kvKeyIndex(c.dtype, row, c.headDim, i);
  if (c.dtype === "int8") return (c.k as Int8Array)[at]! * c.kScale![row]!;
  return readElement(c.dtype as DType, c.k as Exclude<KvData, Int8Array>, at);
}

/** V element i of the token at `row`, widened. */
export function readValue(c: KvLayerCache, row: number, i: number): number {
  const at = kvValueIndex(c.dtype, row, c.headDim, i);
  if (c.dtype === "int8") return (c.v as Int8Array)[at]! * c.vScale![row]!;
  return readElement(c.dtype as DType, c.v as Exclude<KvData, Int8Array>, at);
}

/**
 * Quantizes x[from, from + n) into dst, element i at index(i), as the native kvWrite does:
 * symmetric, scale = absmax / 127 in f32, each value x · (127 / absmax) rounded half to even.
 * Returns the scale (0 for a zero row).
 */
export function quantizeKvRow(
  dst: Int8Array,
  index: (i: number) => number,
  x: Float32Array,
  from: number,
  n: number,
): number {
  let amax = 0;
  for (let i = 0; i < n; i++) amax = Math.max(amax, Math.abs(x[from + i]!));
  const inv = amax > 0 ? Math.fround(127 / amax) : 0;
  for (let i = 0; i < n; i++) {
    const r = roundHalfEven(Math.fround(x[from + i]! * inv));
    dst[index(i)] = Math.min(127, Math.max(-127, r));
  }
  return Math.fround(amax / 127);
}

function roundHalfEven(y: number): number {
  const f = Math.floor(y);
  const d = y - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}
