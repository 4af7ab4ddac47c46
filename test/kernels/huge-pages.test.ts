// adviseHugePages: the KV cache's request for transparent huge pages. It must advise only whole
// 2 MiB pages inside the buffer, leave the data as it was, and reject what is not a typed array.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";
import { allocTensorData } from "../../src/model/tensor.js";
import { nativeKernels } from "./native-setup.js";

const native = nativeKernels();
const HUGE = 2 << 20;

test("advises the 2 MiB-aligned interior of a large buffer and keeps its contents", () => {
  const data = allocTensorData("f32", (16 << 20) / 4);
  for (let i = 0; i < data.length; i += 4099) data[i] = i;
  const advised = native.adviseHugePages(data);
  // madvise(MADV_HUGEPAGE) exists where the kernel has transparent huge pages (sysfs shows them).
  if (process.platform === "linux" && existsSync("/sys/kernel/mm/transparent_hugepage/enabled")) {
    // 16 MiB at any alignment holds at least 7 whole huge pages; never more than the buffer.
    assert.ok(advised >= 7 * HUGE && advised <= 16 << 20, `advised ${advised} bytes`);
    assert.equal(advised % HUGE, 0);
  } else {
    assert.equal(advised, 0);
  }
  for (let i = 0; i < data.length; i += 4099) assert.equal(data[i], i);
});

test("a buffer smaller than one huge page is left alone; a non-array is a TypeError", () => {
  assert.equal(native.adviseHugePages(allocTensorData("bf16", 1024)), 0);
  assert.throws(() => native.adviseHugePages({} as unknown as Float32Array), {
    name: "TypeError",
    message: /adviseHugePages: x must be a typed array/,
  });
});
