// Shared storage on cache lines: once the native kernels load, weights and KV caches start on a
// 64-byte boundary (Node's own large buffers start 16 bytes past a page, so every 64-byte row
// load straddled two lines; see docs/BENCHMARKS.md, "Weights on cache lines").
import assert from "node:assert/strict";
import { test } from "node:test";
import { allocKvLayer } from "../../src/kernels/kv-cache.js";
import { loadNativeAddon } from "../../src/kernels/native-addon.js";
import { allocSharedBytes, allocTensorData, setLineGap, tensorDataOver } from "../../src/model/tensor.js";
import { nativeKernels } from "../kernels/native-setup.js";

const { addon } = loadNativeAddon();
/** Bytes from a view's first element to the next cache line, as the addon sees its address. */
const gapOf = (x: ArrayBufferView): number => addon.lineGap(new Uint8Array(x.buffer, x.byteOffset, 1));

test("with the native kernels loaded, tensors and KV caches start on cache lines", () => {
  nativeKernels(); // installs the aligner
  for (const [dtype, n] of [
    ["bf16", 4096 * 64],
    ["f16", 1000],
    ["f32", 3 * 4096 + 1],
  ] as const) {
    const data = allocTensorData(dtype, n);
    assert.equal(gapOf(data), 0, `${dtype} x ${n} on a line`);
    assert.equal(data.length, n);
    assert.ok(data.byteOffset < 64);
    assert.ok(
      data.every((v) => v === 0),
      "zeroed",
    );
    assert.equal(data.buffer.byteLength, data.byteLength + 64);
  }
  for (const dtype of ["int8", "bf16", "f32"] as const) {
    const layer = allocKvLayer(dtype, 8, 64, 2, 128);
    assert.equal(gapOf(layer.k), 0, `${dtype} K on a line`);
    assert.equal(gapOf(layer.v), 0, `${dtype} V on a line`);
    assert.equal(layer.k.length, 8 * 64 * 2 * 128);
    if (dtype === "int8") assert.equal(gapOf(layer.kScale!), 0, "int8 scales on a line");
  }
  // Small storage is not worth the spare bytes.
  const small = allocTensorData("f32", 100);
  assert.equal(small.byteOffset, 0);
  assert.equal(small.buffer.byteLength, 400);
});

test("a view of shared bytes at an offset reads the same elements as the bytes", () => {
  nativeKernels();
  const bytes = allocSharedBytes(8192);
  const f = tensorDataOver("f32", bytes);
  f[0] = 1.5;
  f[2047] = -2;
  const again = new Float32Array(bytes.buffer, bytes.byteOffset, 2048);
  assert.equal(again[0], 1.5);
  assert.equal(again[2047], -2);
  assert.equal(tensorDataOver("bf16", bytes).length, 4096);
});

test("without the aligner, storage is a plain shared buffer", () => {
  setLineGap(null);
  try {
    const data = allocTensorData("bf16", 4096 * 64);
    assert.equal(data.byteOffset, 0);
    assert.equal(data.buffer.byteLength, data.byteLength);
  } finally {
    nativeKernels(); // back as the other tests in this process expect
  }
});
