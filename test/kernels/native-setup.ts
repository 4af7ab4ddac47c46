import { loadKernelBackend } from "../../src/kernels/index.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { bf16ToF32, f32ToBf16 } from "../../src/model/tensor.js";

/** The native backend (these tests require the addon to be built: `npm run build:native`). */
export function nativeKernels(): NativeBackend {
  return loadKernelBackend({ backend: "native", threads: 2 }) as NativeBackend;
}

/** Runs `body` once per compiled variant this CPU supports, restoring the best one afterwards. */
export function forEachVariant(native: NativeBackend, body: (variant: string) => void): void {
  const { supported } = native.info();
  try {
    for (const v of supported) {
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
