import { loadKernelBackend } from "../../src/kernels/index.js";
import type { NativeBackend } from "../../src/kernels/native.js";

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
