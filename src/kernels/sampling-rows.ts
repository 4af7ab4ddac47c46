/**
 * The sampler's row kernels in TypeScript (KernelBackend's rowSoftmax, argmax and drawIndex): the
 * reference backend's, and the sampler's own where it has no kernels. The native addon's
 * (sampling_kernels.h) are vector passes of the same definitions.
 */

/** out[0, n) = softmax(scale · x[off, off + n)), scale > 0. */
export function rowSoftmax(out: Float32Array, x: Float32Array, off: number, n: number, scale: number): void {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const v = x[off + i]!;
    if (v > max) max = v;
  }
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp((x[off + i]! - max) * scale);
    out[i] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let i = 0; i < n; i++) out[i] = out[i]! * inv;
}

/** The first index of the largest of x[off, off + n) (a NaN never wins; x[off] NaN: 0). */
export function argmax(x: Float32Array, off: number, n: number): number {
  let best = 0;
  let bv = x[off]!;
  for (let i = 1; i < n; i++) {
    const v = x[off + i]!;
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  return best;
}

/** With u in [0, 1): the first j whose running sum of p[0..j] exceeds u · Σ p[0, n) (n − 1 if none). */
export function drawIndex(p: Float32Array, n: number, u: number): number {
  let total = 0;
  for (let j = 0; j < n; j++) total += p[j]!;
  const target = u * total;
  let cum = 0;
  for (let j = 0; j < n; j++) {
    cum += p[j]!;
    if (cum > target) return j;
  }
  return n - 1;
}

/** The three as the sampler takes them. */
export const samplingRows = { rowSoftmax, argmax, drawIndex };
