import assert from "node:assert/strict";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { readSafetensors, readSafetensorsHeader, SafetensorsFile } from "../../src/model/safetensors.js";
import { SafetensorsCheckpoint } from "../../src/model/safetensors-checkpoint.js";
import { writeSafetensors } from "../../src/model/safetensors-writer.js";
import { allocTensorData, type DType, f32ToBf16, type Tensor } from "../../src/model/tensor.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-st-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function tensor(name: string, dtype: DType, shape: number[], fill: (i: number) => number): Tensor {
  let n = 1;
  for (const d of shape) n *= d;
  const data = allocTensorData(dtype, n);
  for (let i = 0; i < n; i++) data[i] = fill(i);
  return { name, dtype, shape, data };
}

/** A safetensors file with an arbitrary header (for malformed inputs). */
function writeRaw(name: string, header: unknown, dataBytes: number, headerText?: string): string {
  const file = path.join(tmp, name);
  const json = Buffer.from(headerText ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(dataBytes)]));
  return file;
}

describe("safetensors", () => {
  test("round trip keeps every dtype in its stored precision on SharedArrayBuffers", () => {
    const file = path.join(tmp, "roundtrip.safetensors");
    const tensors = [
      tensor("a.f32", "f32", [2, 3], (i) => i * 0.25 - 1),
      tensor("b.bf16", "bf16", [4], (i) => f32ToBf16(i + 0.5)),
      tensor("c.f16", "f16", [3, 1], (i) => 0x3c00 + i), // 1.0, 1.0009…, …
      tensor("d.empty", "f32", [0, 4], () => 0),
    ];
    writeSafetensors(file, tensors, { format: "pt" });
    const header = readSafetensorsHeader(file);
    assert.equal(header.dataStart % 8, 0, "header is padded to 8 bytes");
    assert.deepEqual(header.metadata, { format: "pt" });
    const back = readSafetensors(file);
    assert.equal(back.size, 4);
    for (const t of tensors) {
      const r = back.get(t.name)!;
      assert.equal(r.dtype, t.dtype);
      assert.deepEqual(r.shape, t.shape);
      assert.ok(r.data.buffer instanceof SharedArrayBuffer, `${t.name} on a SharedArrayBuffer`);
      assert.equal(r.data.constructor, t.dtype === "f32" ? Float32Array : Uint16Array);
      assert.deepEqual(Array.from(r.data), Array.from(t.data));
    }
    // bf16 stays raw words: 0.5 → 0x3f00, 1.5 → 0x3fc0
    assert.deepEqual(Array.from(back.get("b.bf16")!.data).slice(0, 2), [0x3f00, 0x3fc0]);
  });

  test("a sharded checkpoint is read through its index", () => {
    const dir = path.join(tmp, "sharded");
    mkdirSync(dir);
    const a = tensor("x.weight", "f32", [2, 2], (i) => i);
    const b = tensor("y.weight", "bf16", [3], (i) => i + 7);
    writeSafetensors(path.join(dir, "model-00001-of-00002.safetensors"), [a]);
    writeSafetensors(path.join(dir, "model-00002-of-00002.safetensors"), [b]);
    writeFileSync(
      path.join(dir, "model.safetensors.index.json"),
      JSON.stringify({
        metadata: { total_size: 22 },
        weight_map: {
          "x.weight": "model-00001-of-00002.safetensors",
          "y.weight": "model-00002-of-00002.safetensors",
        },
      }),
    );
    const ckpt = SafetensorsCheckpoint.open(dir);
    try {
      assert.deepEqual([...ckpt.tensorNames].sort(), ["x.weight", "y.weight"]);
      assert.deepEqual(Array.from(ckpt.read("x.weight").data), [0, 1, 2, 3]);
      assert.deepEqual(Array.from(ckpt.read("y.weight").data), [7, 8, 9]);
      assert.match(ckpt.describe("y.weight")!.file, /model-00002-of-00002/);
    } finally {
      ckpt.close();
    }

    // An index naming a tensor its shard lacks is an error naming both.
    writeFileSync(
      path.join(dir, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: { "z.weight": "model-00001-of-00002.safetensors" } }),
    );
    assert.throws(
      () => SafetensorsCheckpoint.open(dir),
      /model\.safetensors\.index\.json: says "z\.weight" is in model-00001-of-00002\.safetensors/,
    );
    writeFileSync(
      path.join(dir, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: { "x.weight": "model-00009.safetensors" } }),
    );
    assert.throws(
      () => SafetensorsCheckpoint.open(dir),
      /shard "model-00009\.safetensors" .* does not exist/,
    );
  });

  test("tensors beyond 2 GiB are read with positioned reads (sparse file)", () => {
    const file = path.join(tmp, "big.safetensors");
    const padFloats = 600_000_000; // 2.4 GB of zeros before the tensor we read, never written (a hole)
    const header = JSON.stringify({
      pad: { dtype: "F32", shape: [padFloats], data_offsets: [0, padFloats * 4] },
      tail: { dtype: "BF16", shape: [4], data_offsets: [padFloats * 4, padFloats * 4 + 8] },
    });
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    const fd = openSync(file, "w");
    try {
      writeSync(fd, Buffer.concat([prefix, Buffer.from(header)]));
      const tail = Buffer.from(Uint16Array.from([1, 2, 3, 0xbeef]).buffer);
      writeSync(fd, tail, 0, tail.length, 8 + header.length + padFloats * 4);
    } finally {
      closeSync(fd);
    }
    const st = SafetensorsFile.open(file);
    try {
      const t = st.read("tail");
      assert.ok(st.header.tensors.get("tail")!.begin > 2 ** 31);
      assert.deepEqual(Array.from(t.data), [1, 2, 3, 0xbeef]);
    } finally {
      st.close();
      rmSync(file);
    }
  });

  test("header length past the end of the file", () => {
    const file = path.join(tmp, "hugeheader.safetensors");
    const buf = Buffer.alloc(64);
    buf.writeBigUInt64LE(1000n);
    writeFileSync(file, buf);
    assert.throws(
      () => readSafetensorsHeader(file),
      (e: Error) =>
        e.message.startsWith(file) && /header length 1000 runs past the end of the file/.test(e.message),
    );
    const absurd = path.join(tmp, "absurd.safetensors");
    buf.writeBigUInt64LE(1n << 60n);
    writeFileSync(absurd, buf);
    assert.throws(() => readSafetensorsHeader(absurd), /absurd\.safetensors: header length .* exceeds/);
  });

  test("header that is not JSON", () => {
    const file = writeRaw("badjson.safetensors", null, 0, "{not json");
    assert.throws(() => readSafetensorsHeader(file), /badjson\.safetensors: header is not valid JSON/);
  });

  test("unsupported dtype names the file and the tensor", () => {
    const file = writeRaw("i8.safetensors", { "w.q": { dtype: "I8", shape: [4], data_offsets: [0, 4] } }, 4);
    assert.throws(
      () => readSafetensorsHeader(file),
      /i8\.safetensors: tensor "w\.q" has unsupported dtype I8 \(supported: F32, F16, BF16, F8_E4M3, U8\)/,
    );
  });

  test("U8 tensors (MXFP4 blocks) are bytes: read as such, refused as weights", () => {
    const file = writeRaw("u8.safetensors", { b: { dtype: "U8", shape: [2, 2], data_offsets: [0, 4] } }, 4);
    const st = SafetensorsFile.open(file);
    try {
      assert.equal(st.readBytes("b").length, 4);
      assert.throws(() => st.read("b"), /u8\.safetensors: tensor "b" is U8: bytes, not weights/);
    } finally {
      st.close();
    }
  });

  test("shape × dtype size must equal the byte range", () => {
    const file = writeRaw(
      "size.safetensors",
      { w: { dtype: "F32", shape: [2, 3], data_offsets: [0, 20] } },
      24,
    );
    assert.throws(
      () => readSafetensorsHeader(file),
      /size\.safetensors: tensor "w" \(F32 \[2,3\]\) needs 24 bytes/,
    );
  });

  test("overlapping tensors are refused", () => {
    const file = writeRaw(
      "overlap.safetensors",
      {
        a: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
        b: { dtype: "F32", shape: [4], data_offsets: [8, 24] },
      },
      24,
    );
    assert.throws(() => readSafetensorsHeader(file), /overlap\.safetensors: tensors "a" and "b" overlap/);
  });

  test("a truncated file names the file and the tensor cut off", () => {
    const file = path.join(tmp, "full.safetensors");
    writeSafetensors(file, [
      tensor("first", "f32", [16], (i) => i),
      tensor("second", "bf16", [16], (i) => i),
    ]);
    const cut = path.join(tmp, "cut.safetensors");
    const bytes = readFileSync(file);
    writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
    assert.throws(
      () => readSafetensors(cut),
      (e: Error) =>
        e.message.startsWith(cut) && /tensor "second" ends at byte \d+ but the file has only/.test(e.message),
    );
  });

  test("malformed entries and offsets", () => {
    const noOffsets = writeRaw("nooff.safetensors", { w: { dtype: "F32", shape: [1] } }, 4);
    assert.throws(
      () => readSafetensorsHeader(noOffsets),
      /nooff\.safetensors: tensor "w" has invalid data_offsets/,
    );
    const badShape = writeRaw(
      "shape.safetensors",
      { w: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } },
      4,
    );
    assert.throws(
      () => readSafetensorsHeader(badShape),
      /shape\.safetensors: tensor "w" has an invalid shape/,
    );
    const notObject = writeRaw("array.safetensors", [1, 2], 0);
    assert.throws(() => readSafetensorsHeader(notObject), /array\.safetensors: header JSON is not an object/);
  });
});
