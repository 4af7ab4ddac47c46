import { allocTensorData, type DType, f32ToBf16, f32ToF16, type Tensor } from "./tensor.js";

/**
 * A small seeded PRNG (mulberry32) and helpers to fill tensors with reproducible values, for the
 * demo model and test fixtures. The same seed gives the same bytes on every machine.
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

/** Stores one fp32 value as element i in the given precision (rounded to nearest even). */
export function storeElement(dtype: DType, data: Float32Array | Uint16Array, i: number, value: number): void {
  if (dtype === "f32") data[i] = value;
  else data[i] = dtype === "bf16" ? f32ToBf16(value) : f32ToF16(value);
}

/** A tensor of zero-mean uniform values with standard deviation `std`. */
export function randomTensor(
  rng: SeededRandom,
  name: string,
  dtype: DType,
  shape: readonly number[],
  std: number,
): Tensor {
  let n = 1;
  for (const d of shape) n *= d;
  const data = allocTensorData(dtype, n);
  for (let i = 0; i < n; i++) storeElement(dtype, data, i, rng.uniform(std));
  return { name, dtype, shape, data };
}

/** A tensor of values mean ± spread (e.g. RMSNorm weights near 1). */
export function nearConstantTensor(
  rng: SeededRandom,
  name: string,
  dtype: DType,
  shape: readonly number[],
  mean: number,
  spread: number,
): Tensor {
  let n = 1;
  for (const d of shape) n *= d;
  const data = allocTensorData(dtype, n);
  for (let i = 0; i < n; i++) storeElement(dtype, data, i, mean + (spread === 0 ? 0 : rng.uniform(spread)));
  return { name, dtype, shape, data };
}
