/** Small, dependency-free fits for the profile measurements. */

/** Least-squares line y = intercept + slope·x. */
export function fitLine(pts: readonly { x: number; y: number }[]): { slope: number; intercept: number } {
  const n = pts.length;
  if (n < 2) throw new Error("fitLine needs at least two points");
  let sx = 0;
  let sy = 0;
  for (const p of pts) {
    sx += p.x;
    sy += p.y;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxx = 0;
  let sxy = 0;
  for (const p of pts) {
    sxx += (p.x - mx) ** 2;
    sxy += (p.x - mx) * (p.y - my);
  }
  if (sxx === 0) throw new Error("fitLine: all x are equal");
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx };
}

/**
 * Fits the simulator's GEMM roofline to a batch sweep: time(B) = max(2·N·(B + h)/peak, memory(B)),
 * i.e. FLOP/s = peak·B/(B + h) where compute-bound. Minimises the squared log error over h on a
 * fine grid, with peak in closed form for each h (the geometric mean of the implied peaks).
 */
export function fitGemm(
  pts: readonly { batch: number; seconds: number }[],
  params: number,
  memorySeconds: (batch: number) => number,
): { peakFlops: number; halfBatch: number } {
  if (pts.length < 2) throw new Error("fitGemm needs at least two batch sizes");
  let best = { err: Number.POSITIVE_INFINITY, peakFlops: 0, halfBatch: 0 };
  for (let h = 0.05; h <= 256; h *= 1.02) {
    // Implied peak per point where compute-bound; geometric mean as the starting estimate.
    let logSum = 0;
    for (const p of pts) logSum += Math.log((2 * params * (p.batch + h)) / p.seconds);
    let peak = Math.exp(logSum / pts.length);
    // A few refinements: points the memory term covers do not pull on the peak.
    for (let it = 0; it < 4; it++) {
      let s = 0;
      let n = 0;
      for (const p of pts) {
        const compute = (2 * params * (p.batch + h)) / peak;
        if (compute >= memorySeconds(p.batch)) {
          s += Math.log((2 * params * (p.batch + h)) / p.seconds);
          n++;
        }
      }
      if (n === 0) break;
      peak = Math.exp(s / n);
    }
    let err = 0;
    for (const p of pts) {
      const model = Math.max((2 * params * (p.batch + h)) / peak, memorySeconds(p.batch));
      err += Math.log(model / p.seconds) ** 2;
    }
    if (err < best.err) best = { err, peakFlops: peak, halfBatch: h };
  }
  return { peakFlops: best.peakFlops, halfBatch: best.halfBatch };
}
