import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { type GgufKv, type GgufTensorSource, gguf, writeGguf } from "../../src/convert/gguf-writer.js";
import { readGguf } from "./gguf-reader.js";

const dir = mkdtempSync(path.join(tmpdir(), "lamina-gguf-writer-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function bytesOf(a: Float32Array | Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function source(
  name: string,
  type: "f32" | "f16" | "bf16",
  shape: number[],
  data: Float32Array | Uint16Array,
) {
  return {
    name,
    type,
    shape,
    byteLength: data.byteLength,
    *chunks() {
      // Two chunks, to exercise multi-chunk tensors.
      const b = bytesOf(data);
      yield b.subarray(0, 3);
      yield b.subarray(3);
    },
  } satisfies GgufTensorSource;
}

const metadata: GgufKv[] = [
  { key: "general.architecture", value: gguf.str("llama") },
  { key: "t.u8", value: { type: "uint8", value: 250 } },
  { key: "t.i8", value: { type: "int8", value: -7 } },
  { key: "t.u16", value: { type: "uint16", value: 65000 } },
  { key: "t.i16", value: { type: "int16", value: -30000 } },
  { key: "t.u32", value: gguf.u32(4_000_000_000) },
  { key: "t.i32", value: gguf.i32(-2_000_000_000) },
  { key: "t.f32", value: gguf.f32(1e-5) },
  { key: "t.bool", value: gguf.bool(true) },
  { key: "t.u64", value: { type: "uint64", value: 2n ** 40n + 3n } },
  { key: "t.i64", value: { type: "int64", value: -(2n ** 50n) } },
  { key: "t.f64", value: { type: "float64", value: Math.PI } },
  { key: "t.unicode", value: gguf.str("▁héllo ✓") },
  { key: "t.strings", value: gguf.array("string", ["<s>", "▁a", "", "b c"]) },
  { key: "t.floats", value: gguf.array("float32", Float32Array.of(-1000, 0.5, -3)) },
  { key: "t.ints", value: gguf.array("int32", Int32Array.of(1, 3, 6, -2)) },
  { key: "t.bools", value: gguf.array("bool", [true, false]) },
  { key: "t.empty", value: gguf.array("uint32", []) },
];

describe("GGUF writer round trip (through an independent reader)", () => {
  const a = Float32Array.from({ length: 3 * 5 }, (_, i) => i * 0.25 - 1);
  const b = Uint16Array.from({ length: 7 }, (_, i) => 0x3c00 + i); // f16 values
  const c = Uint16Array.from({ length: 2 * 3 * 4 }, (_, i) => 0x3f80 + i); // bf16 values
  const tensors = [
    source("a.weight", "f32", [3, 5], a),
    source("b.weight", "f16", [7], b),
    source("c.weight", "bf16", [2, 3, 4], c),
  ];

  for (const alignment of [32, 64]) {
    it(`alignment ${alignment}: metadata, shapes, types, offsets and data come back exactly`, () => {
      const file = path.join(dir, `round-trip-${alignment}.gguf`);
      const summary = writeGguf(file, metadata, tensors, { alignment });
      assert.equal(summary.bytes, statSync(file).size);
      const g = readGguf(file);
      assert.equal(g.version, 3);
      assert.equal(g.alignment, alignment);
      assert.equal(g.metadata.get("general.alignment"), alignment);
      assert.equal(g.metadataTypes.get("general.alignment"), "4"); // uint32
      assert.equal(g.metadata.size, metadata.length + 1);
      assert.equal(g.metadata.get("general.architecture"), "llama");
      assert.equal(g.metadata.get("t.u8"), 250);
      assert.equal(g.metadata.get("t.i8"), -7);
      assert.equal(g.metadata.get("t.u16"), 65000);
      assert.equal(g.metadata.get("t.i16"), -30000);
      assert.equal(g.metadata.get("t.u32"), 4_000_000_000);
      assert.equal(g.metadata.get("t.i32"), -2_000_000_000);
      assert.equal(g.metadata.get("t.f32"), Math.fround(1e-5));
      assert.equal(g.metadata.get("t.bool"), true);
      assert.equal(g.metadata.get("t.u64"), 2n ** 40n + 3n);
      assert.equal(g.metadata.get("t.i64"), -(2n ** 50n));
      assert.equal(g.metadata.get("t.f64"), Math.PI);
      assert.equal(g.metadata.get("t.unicode"), "▁héllo ✓");
      assert.deepEqual(g.metadata.get("t.strings"), ["<s>", "▁a", "", "b c"]);
      assert.equal(g.metadataTypes.get("t.strings"), "array:8");
      assert.deepEqual(g.metadata.get("t.floats"), [-1000, 0.5, -3]);
      assert.equal(g.metadataTypes.get("t.floats"), "array:6");
      assert.deepEqual(g.metadata.get("t.ints"), [1, 3, 6, -2]);
      assert.equal(g.metadataTypes.get("t.ints"), "array:5");
      assert.deepEqual(g.metadata.get("t.bools"), [true, false]);
      assert.deepEqual(g.metadata.get("t.empty"), []);

      assert.deepEqual([...g.tensors.keys()], ["a.weight", "b.weight", "c.weight"]);
      const expect = [
        { name: "a.weight", shape: [3, 5], type: 0, data: bytesOf(a) },
        { name: "b.weight", shape: [7], type: 1, data: bytesOf(b) },
        { name: "c.weight", shape: [2, 3, 4], type: 30, data: bytesOf(c) },
      ];
      for (const e of expect) {
        const t = g.tensors.get(e.name)!;
        assert.deepEqual(t.shape, e.shape, e.name);
        assert.equal(t.type, e.type, e.name);
        assert.equal(t.offset % alignment, 0, `${e.name} offset is aligned`);
        assert.equal((g.dataStart + t.offset) % alignment, 0);
        assert.deepEqual(Buffer.from(t.data), Buffer.from(e.data), e.name);
      }
    });
  }

  it("metadata far larger than the writer's initial buffer (a 100k-token vocabulary) comes back intact", () => {
    const file = path.join(dir, "big-vocab.gguf");
    const tokens = Array.from({ length: 100_000 }, (_, i) => `tok${i}▁`);
    const scores = Float32Array.from(tokens, (_, i) => -i);
    writeGguf(
      file,
      [
        { key: "tokenizer.ggml.tokens", value: gguf.array("string", tokens) },
        { key: "tokenizer.ggml.scores", value: gguf.array("float32", scores) },
        { key: "after", value: gguf.u32(7) },
      ],
      [source("a.weight", "f32", [3, 5], a)],
    );
    const g = readGguf(file);
    assert.deepEqual(g.metadata.get("tokenizer.ggml.tokens"), tokens);
    assert.deepEqual(g.metadata.get("tokenizer.ggml.scores"), [...scores]);
    assert.equal(g.metadata.get("after"), 7);
    assert.deepEqual(Buffer.from(g.tensors.get("a.weight")!.data), Buffer.from(bytesOf(a)));
  });

  it("a file with no tensors is just the header and metadata", () => {
    const file = path.join(dir, "empty.gguf");
    writeGguf(file, [{ key: "k", value: gguf.str("v") }], []);
    const g = readGguf(file);
    assert.equal(g.tensors.size, 0);
    assert.equal(g.metadata.get("k"), "v");
  });
});

describe("GGUF writer errors", () => {
  const file = path.join(dir, "bad.gguf");
  const t = source("x", "f32", [2, 2], new Float32Array(4));

  it("a duplicated metadata key or tensor name is refused", () => {
    assert.throws(
      () =>
        writeGguf(
          file,
          [
            { key: "k", value: gguf.u32(1) },
            { key: "k", value: gguf.u32(2) },
          ],
          [],
        ),
      /metadata key "k" given twice/,
    );
    assert.throws(() => writeGguf(file, [], [t, t]), /tensor "x" given twice/);
  });

  it("values outside their type's range, or of the wrong kind, are refused with the key", () => {
    assert.throws(
      () => writeGguf(file, [{ key: "n", value: gguf.u32(-1) }], []),
      /metadata "n".*not a valid uint32/,
    );
    assert.throws(() => writeGguf(file, [{ key: "n", value: gguf.i32(1.5) }], []), /not a valid int32/);
    assert.throws(
      () => writeGguf(file, [{ key: "arr", value: gguf.array("string", ["a", 3 as unknown as string]) }], []),
      /metadata "arr".*not a valid string/,
    );
  });

  it("a tensor whose byte length does not match its shape, or whose data runs short, is refused", () => {
    assert.throws(
      () => writeGguf(file, [], [{ ...t, byteLength: 12 }]),
      /tensor "x" declares 12 bytes, its shape \[2, 2\] of f32 needs 16/,
    );
    const short: GgufTensorSource = {
      ...t,
      *chunks() {
        yield new Uint8Array(8);
      },
    };
    assert.throws(() => writeGguf(file, [], [short]), /tensor "x" produced 8 bytes, expected 16/);
    assert.equal(existsSync(file), false, "the partial file is removed");
    assert.throws(() => writeGguf(file, [], [{ ...t, shape: [0, 4], byteLength: 0 }]), /invalid shape/);
  });

  it("a bad alignment, or general.alignment given as metadata, is refused", () => {
    assert.throws(
      () => writeGguf(file, [], [], { alignment: 12 }),
      /alignment must be a positive multiple of 8/,
    );
    assert.throws(
      () => writeGguf(file, [{ key: "general.alignment", value: gguf.u32(64) }], []),
      /pass the alignment as an option/,
    );
  });
});
