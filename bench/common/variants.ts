import type { NativeBackend } from "../../src/kernels/native.js";

/**
 * The kernel variants --variant names (comma-separated), or the backend's own: each one this CPU
 * runs, or one that stands in here for another CPU (amxbf16-emulated, avx512-novnni, avx2-novnni); anything else
 * is refused with the list.
 */
export function variantFlag(backend: NativeBackend, value: string | undefined): string[] {
  const { supported, emulated, variant } = backend.info();
  const known = [...supported, ...emulated];
  const variants = value?.split(",") ?? [variant];
  for (const v of variants)
    if (!known.includes(v))
      throw new Error(`--variant: "${v}" is not one this CPU runs (${known.join(", ")})`);
  return variants;
}
