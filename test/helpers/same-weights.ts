import assert from "node:assert/strict";
import type { Tensor } from "../../src/model/tensor.js";
import { toFloat32 } from "../../src/model/tensor.js";
import type { WeightStore } from "../../src/model/types.js";

/** A tensor's stored bytes (for bit-identity checks). */
export function tensorBytes(t: Tensor): Buffer {
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/**
 * `b` holds the same weights as `a`: the same names and shapes, matrices bit-identical in the same
 * dtype, and 1-D tensors equal as `vector` reads them (by default their f32 values).
 */
export function assertSameWeights(
  a: WeightStore,
  b: WeightStore,
  vector: (t: Tensor) => ArrayLike<number> = toFloat32,
): void {
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  for (const [name, t] of a) {
    const u = b.get(name)!;
    assert.deepEqual(u.shape, t.shape, name);
    if (t.shape.length > 1) {
      assert.equal(u.dtype, t.dtype, name);
      assert.ok(tensorBytes(u).equals(tensorBytes(t)), `${name}: not bit-identical`);
    } else {
      assert.deepEqual(vector(u), vector(t), name);
    }
  }
}
