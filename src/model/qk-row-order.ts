import type { Architecture, ModelConfig } from "./config.js";
import { allocSharedBytes, type Tensor, tensorDataOver } from "./tensor.js";

/**
 * The two row orders of q/k projections. The engine's RoPE rotates halves (dim i with i + hd/2,
 * Hugging Face's rotate_half); llama.cpp's "normal" RoPE, and ERNIE 4.5's checkpoints, rotate
 * interleaved pairs (dims 2i and 2i + 1). Permuting a projection's rows within each head turns one
 * into the other, so the engine loads interleaved weights in its own order and writes them back.
 */

/** Families whose Hugging Face checkpoints hold q/k rows in interleaved pairs (ERNIE 4.5 rotates pairs). */
export function hfInterleavesQk(arch: Architecture): boolean {
  return arch === "ernie4_5" || arch === "ernie4_5_moe" || arch === "glm4";
}

/** The dims of each head RoPE rotates (GLM-4's first half; the whole head for most families). */
export function rotatedDims(c: Pick<ModelConfig, "rotaryDim" | "headDim">): number {
  return c.rotaryDim ?? c.headDim;
}

/** Heads whose rows a q or k projection (weight or bias) holds; 0 for any other tensor. */
export function qkHeads(c: ModelConfig, hfName: string): number {
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hfName)) return c.numHeads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hfName)) return c.numKvHeads;
  return 0;
}

function headSize(rows: number, nHeads: number): number {
  const hd = rows / nHeads;
  if (!Number.isInteger(hd) || hd % 2 !== 0)
    throw new Error(`${rows} q/k rows do not split into ${nHeads} heads of an even size`);
  return hd;
}

/**
 * Rotate-half row order from interleaved pairs over each head's first `rotated` rows (all by
 * default): row h·hd + 2i + p goes to h·hd + p·rotated/2 + i; the rows past them stay. Into shared
 * memory (the engine's weights are shared with its worker threads).
 */
export function deinterleaveRows(
  src: Uint8Array,
  nHeads: number,
  rowBytes: number,
  rotated?: number,
): Uint8Array {
  const hd = headSize(src.length / rowBytes, nHeads);
  const half = (rotated ?? hd) / 2;
  const dst = allocSharedBytes(src.length);
  dst.set(src);
  for (let h = 0; h < nHeads; h++)
    for (let p = 0; p < 2; p++)
      for (let i = 0; i < half; i++) {
        const from = (h * hd + 2 * i + p) * rowBytes;
        dst.set(src.subarray(from, from + rowBytes), (h * hd + p * half + i) * rowBytes);
      }
  return dst;
}

/**
 * Interleaved row order from rotate-half over each head's first `rotated` rows (all by default):
 * row h·hd + p·rotated/2 + i goes to h·hd + 2i + p; the rows past them stay.
 */
export function interleaveRows(
  src: Uint8Array,
  nHeads: number,
  rowBytes: number,
  rotated?: number,
): Uint8Array {
  const hd = headSize(src.length / rowBytes, nHeads);
  const half = (rotated ?? hd) / 2;
  const dst = Uint8Array.from(src);
  for (let h = 0; h < nHeads; h++)
    for (let p = 0; p < 2; p++)
      for (let i = 0; i < half; i++) {
        const from = (h * hd + p * half + i) * rowBytes;
        dst.set(src.subarray(from, from + rowBytes), (h * hd + 2 * i + p) * rowBytes);
      }
  return dst;
}

/**
 * A q/k projection (or its bias) stored in interleaved pairs, as the same tensor with its rows in
 * rotate-half order. Rows of a block format are whole blocks, so they move as bytes like any other.
 */
export function qkRowsToRotateHalf(t: Tensor, heads: number, rotated?: number): Tensor {
  const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const bytes = deinterleaveRows(raw, heads, raw.length / t.shape[0]!, rotated);
  if (t.dtype === "f32") return { ...t, dtype: t.dtype, data: tensorDataOver("f32", bytes) };
  if (t.dtype === "f16" || t.dtype === "bf16")
    return { ...t, dtype: t.dtype, data: tensorDataOver(t.dtype, bytes) as Uint16Array };
  return { ...t, dtype: t.dtype, data: bytes };
}
