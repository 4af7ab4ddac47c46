/**
 * A weighted log-bucket histogram for latencies (1% relative resolution from 10 µs to ~1e5 s):
 * percentiles of millions of samples at O(1) per sample and no allocation.
 */
const MIN = 1e-5;
const GROWTH = 1.01;
const BUCKETS = Math.ceil(Math.log(1e10) / Math.log(GROWTH)) + 2;
const LOG_GROWTH = Math.log(GROWTH);

export class LatencyHistogram {
  private readonly w = new Float64Array(BUCKETS);
  private total = 0;
  private sum = 0;
  private maxSeen = 0;

  add(seconds: number, weight = 1): void {
    if (weight <= 0) return;
    const b =
      seconds <= MIN ? 0 : Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(seconds / MIN) / LOG_GROWTH));
    this.w[b]! += weight;
    this.total += weight;
    this.sum += seconds * weight;
    if (seconds > this.maxSeen) this.maxSeen = seconds;
  }

  get count(): number {
    return this.total;
  }

  mean(): number {
    return this.total > 0 ? this.sum / this.total : Number.NaN;
  }

  max(): number {
    return this.maxSeen;
  }

  /** q in [0, 1]; the bucket's geometric middle (within 0.5% of any sample in it). */
  quantile(q: number): number {
    if (this.total === 0) return Number.NaN;
    const target = q * this.total;
    let acc = 0;
    for (let b = 0; b < BUCKETS; b++) {
      acc += this.w[b]!;
      if (acc >= target && this.w[b]! > 0) {
        if (b === 0) return MIN;
        return Math.min(this.maxSeen, MIN * GROWTH ** (b - 0.5));
      }
    }
    return this.maxSeen;
  }
}
