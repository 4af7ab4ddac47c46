// populatePages: a fresh KV cache's pages mapped ahead of their first write. It must map only the
// whole pages inside the range asked, leave every byte as it was, and reject ranges past the
// array and arguments that are not a typed array.
import assert from "node:assert/strict";
import { test } from "node:test";
import { allocTensorData } from "../../src/model/tensor.js";
import { nativeKernels } from "./native-setup.js";

const native = nativeKernels();
const PAGE = 4096;

test("maps the whole pages of the range and keeps the bytes as they were", () => {
  const data = allocTensorData("f32", (8 << 20) / 4);
  for (let i = 0; i < data.length; i += 1031) data[i] = i;
  const from = 3 * PAGE + 100;
  const length = 2 << 20;
  const populated = native.populatePages(data, from, length);
  if (process.platform === "linux") {
    // The range's whole pages, whatever the buffer's alignment: at most length, at least the
    // length less the two partial pages at its ends.
    assert.ok(populated <= length && populated >= length - 2 * PAGE, `populated ${populated} bytes`);
    assert.equal(populated % PAGE, 0);
  } else {
    assert.equal(populated, 0);
  }
  for (let i = 0; i < data.length; i += 1031) assert.equal(data[i], i);
});

test("a fresh buffer's populated pages count in the process's resident memory at once", () => {
  if (process.platform !== "linux") {
    assert.equal(native.populatePages(new Int8Array(1 << 20), 0, 1 << 20), 0);
    return;
  }
  // Resident memory also moves with the collector's frees elsewhere in the process (a few MiB):
  // a lazily zeroed buffer left alone barely grows it, a populated one by most of its size.
  const bytes = 64 << 20;
  let before = process.memoryUsage().rss;
  const idle = new Int8Array(bytes);
  const idleGrew = process.memoryUsage().rss - before;
  const data = new Int8Array(bytes);
  before = process.memoryUsage().rss;
  const populated = native.populatePages(data, 0, bytes);
  const grew = process.memoryUsage().rss - before;
  assert.ok(populated >= bytes - 2 * PAGE, `populated ${populated}`);
  assert.ok(idleGrew < bytes / 4, `an untouched buffer made resident memory grow ${idleGrew} bytes`);
  assert.ok(grew >= populated / 2, `resident memory grew ${grew} bytes for ${populated} populated`);
  assert.equal(data[12345] + idle[12345], 0);
});

test("a range past the array is a RangeError; a non-array a TypeError; an empty range maps nothing", () => {
  const data = allocTensorData("bf16", 4096);
  assert.throws(() => native.populatePages(data, 4096, 8192), {
    name: "RangeError",
    message: /populatePages: bytes \[4096, 12288\) lie past the array's 8192/,
  });
  assert.throws(() => native.populatePages(data, -1, 10), { name: "TypeError", message: /byteOffset/ });
  assert.throws(() => native.populatePages({} as unknown as Float32Array, 0, 0), {
    name: "TypeError",
    message: /populatePages: x must be a typed array/,
  });
  assert.equal(native.populatePages(data, 100, 0), 0);
});
