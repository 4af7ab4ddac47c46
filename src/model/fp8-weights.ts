import { allocTensorData, type FloatTensor, f32ToBf16 } from "./tensor.js";

/**
 * Checkpoints in FP8 (quantization_config quant_method "fp8", as Qwen3's -FP8 releases are): each
 * linear weight is stored as F8_E4M3 with a `<name>_scale_inv` beside it, one
 * f32 (or bf16) scale per block of weight_block_size rows × columns (or one for the whole weight
 * without a block size), w = fp8 · scale. The engine has no FP8 products: such weights are widened
 * to bf16 once, at load, and run as a bf16 checkpoint would (twice the FP8 bytes in memory).
 */

export interface Fp8Scheme {
  /** Rows × columns a scale covers; null: one scale per weight. */
  readonly block: readonly [number, number] | null;
}

/** config.json's quantization_config as an FP8 scheme, null without one, or a clear refusal. */
export function fp8Scheme(config: unknown, file: string): Fp8Scheme | null {
  const q = (config as { quantization_config?: unknown }).quantization_config;
  if (q == null) return null;
  if (typeof q !== "object") throw new Error(`${file}: quantization_config is not an object`);
  const { quant_method: method, fmt, weight_block_size: block } = q as Record<string, unknown>;
  // gpt-oss's releases: MXFP4 experts (blocks and scales), read by gpt-oss-experts.ts as MXFP4.
  if (method === "mxfp4" && (config as { model_type?: unknown }).model_type === "gpt_oss") return null;
  if (method !== "fp8")
    throw new Error(
      `${file}: quantization_config.quant_method ${JSON.stringify(method)} is not supported (fp8 is, and mxfp4 for gpt_oss; a GGUF file of the model may be)`,
    );
  if (fmt !== undefined && fmt !== "e4m3")
    throw new Error(`${file}: FP8 format ${JSON.stringify(fmt)} is not supported (e4m3 is)`);
  if (block == null) return { block: null };
  if (!Array.isArray(block) || block.length !== 2 || !block.every((v) => Number.isInteger(v) && v > 0))
    throw new Error(
      `${file}: quantization_config.weight_block_size ${JSON.stringify(block)} is not two positive integers`,
    );
  return { block: [block[0] as number, block[1] as number] };
}

/** The name of the scale a weight's FP8 values are multiplied by. */
export const fp8ScaleName = (weight: string): string => `${weight}_scale_inv`;

/** All 256 E4M3 (fn) values: sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities, 0x7F/0xFF NaN. */
const E4M3: Float32Array = (() => {
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) {
    const e = (b >> 3) & 15;
    const m = b & 7;
    const mag = (b & 0x7f) === 0x7f ? Number.NaN : e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7);
    t[b] = b & 0x80 ? -mag : mag;
  }
  return t;
})();

/** One E4M3 byte's value. */
export function e4m3(byte: number): number {
  return E4M3[byte & 255]!;
}

/**
 * `bytes` ([rows, cols] E4M3) times their scales ([⌈rows/b0⌉, ⌈cols/b1⌉], or one), rounded to bf16
 * in shared memory.
 */
export function fp8ToBf16(
  name: string,
  bytes: Uint8Array,
  shape: readonly number[],
  scale: Float32Array,
  scheme: Fp8Scheme,
): FloatTensor {
  const rows = shape.length === 2 ? shape[0]! : 1;
  const cols = shape.length === 2 ? shape[1]! : shape[0]!;
  const [b0, b1] = scheme.block ?? [rows, cols];
  const bc = Math.ceil(cols / b1);
  const want = scheme.block ? Math.ceil(rows / b0) * bc : 1;
  if (scale.length !== want)
    throw new Error(
      `${fp8ScaleName(name)} holds ${scale.length} scales; [${shape.join(", ")}] in blocks of ${b0} × ${b1} needs ${want}`,
    );
  const out = allocTensorData("bf16", rows * cols);
  for (let r = 0; r < rows; r++) {
    const srow = Math.floor(r / b0) * bc;
    for (let c = 0; c < cols; c++)
      out[r * cols + c] = f32ToBf16(E4M3[bytes[r * cols + c]!]! * scale[srow + Math.floor(c / b1)]!);
  }
  return { name, dtype: "bf16", shape, data: out };
}
