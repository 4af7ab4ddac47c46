import { loadKernelBackend } from "../../src/kernels/index.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { bf16ToF32, f32ToBf16 } from "../../src/model/tensor.js";

/** The native backend (these tests require the addon to be built: `npm run build:native`). */
export function nativeKernels(): NativeBackend {
  return loadKernelBackend({ backend: "native", threads: 2 }) as NativeBackend;
}

/**
 * Runs `body` once per compiled variant this CPU supports (and, with `emulated`, once per variant
 * whose special instructions run in software here, e.g. amxbf16-emulated), restoring the best one
 * afterwards.
 */
export function forEachVariant(
  native: NativeBackend,
  body: (variant: string) => void,
  opts: { emulated?: boolean } = {},
): void {
  const { supported, emulated } = native.info();
  try {
    for (const v of opts.emulated ? [...supported, ...emulated] : supported) {
      native.selectVariant(v);
      body(v);
    }
  } finally {
    native.selectVariant(supported[0]!);
  }
}

/** x with every element rounded to bf16 (round-to-nearest-even), as fp32. */
export function roundedToBf16(x: Float32Array): Float32Array {
  const out = new Float32Array(new SharedArrayBuffer(x.length * 4));
  for (let i = 0; i < x.length; i++) out[i] = bf16ToF32(f32ToBf16(x[i]!));
  return out;
}

/**
 * Whether the variant selected now runs attention on this cache through bf16 dot products
 * (avx512bf16's vdpbf16ps; the addon says which variants do): a bf16 cache, 2 or more query heads
 * per KV head, head_dim a multiple of 32. That path rounds the queries and the probabilities to bf16, so tests compare it with the
 * reference run on the rounded queries, within one bf16 step (BF16_DOT_RTOL) of the largest output.
 */
export function attentionTakesBf16Dot(
  native: NativeBackend,
  kvDtype: string,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
): boolean {
  return native.info().bf16DotAttention && kvDtype === "bf16" && nHeads / nKvHeads >= 2 && headDim % 32 === 0;
}

/**
 * Whether the variant now selected runs a prompt's attention tiles on this cache through AMX tiles
 * (kernels.cpp, attentionTileWith: the amxbf16 build and its emulated twin, a bf16 cache, head_dim a
 * multiple of 32), which round queries and probabilities to bf16 as the vdpbf16ps kernels do.
 */
export function promptTilesTakeAmx(native: NativeBackend, kvDtype: string, headDim: number): boolean {
  return native.info().tiles && kvDtype === "bf16" && headDim % 32 === 0;
}

/** One bf16 step: how far rounding the probabilities to bf16 may move an attention output. */
export const BF16_DOT_RTOL = 2 ** -8;
