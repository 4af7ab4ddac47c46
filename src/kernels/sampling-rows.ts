/**
 * The sampler's row kernels in TypeScript (KernelBackend's rowSoftmax, argmax, drawIndex, topK and
 * nucleusCandidates): the reference backend's, and the sampler's own where it has no kernels. The
 * native addon's (sampling_kernels.h) are vector passes of the same definitions.
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

/**
 * The k largest of x[off, off + n) (ties: the lower index), their indices in [0, n) in idx[0, k)
 * as a min-heap leaves them; returns k (n where k ≥ n).
 */
export function topK(x: Float32Array, off: number, n: number, kWanted: number, idx: Int32Array): number {
  const k = Math.min(n, kWanted);
  const below = (a: number, b: number): boolean => {
    const la = x[off + a]!;
    const lb = x[off + b]!;
    return la < lb || (la === lb && a > b);
  };
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < k && below(idx[l]!, idx[m]!)) m = l;
      if (r < k && below(idx[r]!, idx[m]!)) m = r;
      if (m === i) return;
      const t = idx[i]!;
      idx[i] = idx[m]!;
      idx[m] = t;
      i = m;
    }
  };
  for (let i = 0; i < k; i++) idx[i] = i;
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(i);
  for (let t = k; t < n; t++) {
    if (below(idx[0]!, t)) {
      idx[0] = t;
      siftDown(0);
    }
  }
  return k;
}

/**
 * nucleusCandidates' buckets: a probability's float32 bits shifted right by BUCKET_SHIFT (its
 * exponent and 3 mantissa bits), as the addon's (sampling_kernels.h) and the sampler's top-p take them.
 */
export const BUCKET_SHIFT = 20;
const bucketMass = new Float64Array(1 << (31 - BUCKET_SHIFT));
const bitsOf = new Uint32Array(1);
const floatOf = new Float32Array(bitsOf.buffer);

/**
 * top-p's candidates among the probabilities p[0, n): the mass per bucket of float bits, the
 * buckets from the most likely down until they hold topP (one more for the rounding of those sums),
 * and every index in them, in index order, into idx[0, m); returns m.
 */
export function nucleusCandidates(p: Float32Array, n: number, topP: number, idx: Int32Array): number {
  const bucket = (j: number): number => {
    floatOf[0] = p[j]!;
    return bitsOf[0]! >>> BUCKET_SHIFT;
  };
  bucketMass.fill(0);
  for (let j = 0; j < n; j++) {
    const b = bucket(j);
    if (b < bucketMass.length) bucketMass[b] = bucketMass[b]! + p[j]!;
  }
  let cut = bucketMass.length - 1;
  let held = 0;
  while (cut > 0 && held < topP) held += bucketMass[cut--]!;
  const from = held < topP ? 0 : cut;
  let m = 0;
  for (let j = 0; j < n; j++) if (bucket(j) >= from) idx[m++] = j;
  return m;
}

/** The five as the sampler takes them. */
export const samplingRows = { rowSoftmax, argmax, drawIndex, topK, nucleusCandidates };
