import { dequantizeRow, quantRowBytes } from "../model/gguf-dequant.js";
import type { QuantTensor, QuantType } from "../model/tensor.js";
import { checkCount, checkLength } from "./checks.js";

/**
 * The quantized products as the native kernels define them (native/kernels/src/quant_kernels.h),
 * in plain TypeScript: each token's activations are quantized per 32 values to int8 (d = max|x| /
 * 127, q = x / d rounded to nearest, ties to even, in fp32 as the native code computes it), and
 * out = Σ dequantized weight · d · q, accumulated in doubles. The oracle the native kernels are
 * tested against, and the reference backend's product on a quantized weight.
 */

const f = Math.fround;

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** x[xOff, xOff + cols) quantized per 32 values into q (int8) and d (one per block). */
export function quantizeActivations(
  x: Float32Array,
  xOff: number,
  cols: number,
  q: Int8Array,
  d: Float32Array,
): void {
  for (let b = 0; b < cols / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[xOff + b * 32 + j]!));
    const db = f(amax / 127);
    const id = db > 0 ? f(1 / db) : 0;
    d[b] = db;
    for (let j = 0; j < 32; j++) {
      q[b * 32 + j] = Math.max(-127, Math.min(127, roundHalfEven(f(x[xOff + b * 32 + j]! * id))));
    }
  }
}

/** A quantized weight as the reference uses it: the blocks as stored plus scratch for one row and one token. */
export interface QuantReferenceWeight {
  readonly rows: number;
  readonly cols: number;
  readonly dtype: QuantType;
  readonly blocks: Uint8Array;
  readonly row: Float32Array;
  readonly q: Int8Array;
  readonly d: Float32Array;
}

export function isQuantReference(w: { readonly rows: number }): w is QuantReferenceWeight {
  return (w as Partial<QuantReferenceWeight>).blocks instanceof Uint8Array;
}

export function prepareQuantReference(w: QuantTensor): QuantReferenceWeight {
  if (w.shape.length !== 2) throw new TypeError(`prepareWeight: ${w.name} must be 2-D, got [${w.shape}]`);
  const [rows, cols] = w.shape as [number, number];
  let rowBytes: number;
  try {
    rowBytes = quantRowBytes(w.dtype, cols);
  } catch (e) {
    throw new TypeError(`prepareWeight: ${w.name}: ${(e as Error).message}`);
  }
  checkLength("prepareWeight", w.name, w.data, rows * rowBytes);
  const scratch = { row: new Float32Array(cols), q: new Int8Array(cols), d: new Float32Array(cols / 32) };
  return { rows, cols, dtype: w.dtype, blocks: w.data, ...scratch };
}

/** out[t, r] = Σ_c W[r, c] · dq(x)[t, c] (+ bias[r]), the weights decoded a row at a time. */
export function quantMatmulReference(
  out: Float32Array,
  x: Float32Array,
  w: QuantReferenceWeight,
  nTokens: number,
  bias?: Float32Array,
): void {
  const { rows, cols } = w;
  checkCount("matmul", "nTokens", nTokens);
  checkLength("matmul", "x", x, nTokens * cols);
  checkLength("matmul", "out", out, nTokens * rows);
  if (bias) checkLength("matmul", "bias", bias, rows);
  for (let t = 0; t < nTokens; t++) {
    quantizeActivations(x, t * cols, cols, w.q, w.d);
    for (let r = 0; r < rows; r++) {
      dequantizeRow(w.dtype, w.blocks, r, cols, w.row);
      let acc = bias ? bias[r]! : 0;
      for (let c = 0; c < cols; c++) acc += w.row[c]! * w.d[c >> 5]! * w.q[c]!;
      out[t * rows + r] = acc;
    }
  }
}

/** out[t, :] = row tokens[t] of a quantized embedding table, dequantized. */
export function quantEmbeddingReference(
  out: Float32Array,
  table: QuantTensor,
  tokens: Int32Array,
  nTokens: number,
): void {
  const [vocab, dim] = table.shape as [number, number];
  checkLength("embedding", "out", out, nTokens * dim);
  for (let t = 0; t < nTokens; t++) {
    const id = tokens[t]!;
    if (!(id >= 0 && id < vocab))
      throw new RangeError(`embedding: tokens[${t}] = ${id} is outside [0, ${vocab})`);
    dequantizeRow(table.dtype, table.data, id, dim, out.subarray(t * dim, (t + 1) * dim));
  }
}
