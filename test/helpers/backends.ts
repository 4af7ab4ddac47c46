import type { KernelBackend } from "../../src/kernels/backend.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { ReferenceBackend } from "../../src/kernels/reference.js";

/**
 * The backends the engine tests run on: the native addon (the fast path, required unless
 * LAMINA_ALLOW_NO_NATIVE=1 says a machine cannot build it) and the TypeScript reference.
 */
export function engineBackends(): { name: string; backend: KernelBackend }[] {
  const list: { name: string; backend: KernelBackend }[] = [];
  try {
    list.push({ name: "native", backend: loadKernelBackend({ backend: "native", threads: 2 }) });
  } catch (e) {
    if (process.env.LAMINA_ALLOW_NO_NATIVE !== "1")
      throw new Error(`the native kernel addon is required for these tests: ${(e as Error).message}`);
  }
  list.push({ name: "reference", backend: new ReferenceBackend() });
  return list;
}

export function nativeBackend(): KernelBackend {
  return engineBackends()[0]!.backend;
}
