/**
 * A small seeded PRNG (mulberry32): the same seed gives the same sequence on every machine, for
 * synthetic traces, random weights and test fixtures. It depends on nothing, so the simulator can
 * use it without loading runtime code.
 */
const SQRT3 = Math.sqrt(3);

export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [-a, a) with a = std·√3, so the standard deviation is `std`. */
  uniform(std: number): number {
    return (this.next() * 2 - 1) * std * SQRT3;
  }
}
