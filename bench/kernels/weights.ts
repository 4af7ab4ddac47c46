// Weights for the kernel benchmarks: enough copies of one matrix to span a working set past the
// last-level cache, so a pass over them reads every weight from DRAM as a decode step does.
import type { PreparedWeight } from "../../src/kernels/backend.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { allocTensorData, bytesPerElement, type DType, f32ToBf16, f32ToF16 } from "../../src/model/tensor.js";

/** At least two prepared rows x cols matrices of `value`, together at least `workingSet` bytes. */
export function rotatingWeights(
  backend: NativeBackend,
  dtype: DType,
  rows: number,
  cols: number,
  workingSet: number,
  value: number,
): PreparedWeight[] {
  const stored = dtype === "f32" ? value : dtype === "bf16" ? f32ToBf16(value) : f32ToF16(value);
  const count = Math.max(2, Math.ceil(workingSet / (rows * cols * bytesPerElement(dtype))));
  return Array.from({ length: count }, (_, i) => {
    const data = allocTensorData(dtype, rows * cols);
    data.fill(stored); // touches every page
    return backend.prepareWeight({ name: `w${i}`, dtype, shape: [rows, cols], data });
  });
}
