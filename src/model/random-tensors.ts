import type { SeededRandom } from "../util/seeded-random.js";
import { allocTensorData, type DType, type FloatTensor, f32ToBf16, f32ToF16 } from "./tensor.js";

/**
 * Tensors filled with reproducible values from a SeededRandom, for the random-weight demo model.
 * The same seed gives the same bytes on every machine.
 */

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
): FloatTensor {
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
): FloatTensor {
  let n = 1;
  for (const d of shape) n *= d;
  const data = allocTensorData(dtype, n);
  for (let i = 0; i < n; i++) storeElement(dtype, data, i, mean + (spread === 0 ? 0 : rng.uniform(spread)));
  return { name, dtype, shape, data };
}
