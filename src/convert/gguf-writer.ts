import { closeSync, openSync, rmSync, writeSync } from "node:fs";
import {
  GGML_BLOCK,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgmlType,
  type GgmlTypeName,
  type GgufScalarType,
  GgufType,
} from "./gguf-format.js";

export type GgufScalarValue = number | bigint | boolean | string;

/** One typed metadata value: a scalar, or an array of one scalar type (arrays of arrays are not needed). */
export type GgufValue =
  | { readonly type: GgufScalarType; readonly value: GgufScalarValue }
  | {
      readonly type: "array";
      readonly itemType: GgufScalarType;
      readonly values: ArrayLike<GgufScalarValue>;
    };

export interface GgufKv {
  readonly key: string;
  readonly value: GgufValue;
}

/** Shorthands for building metadata values. */
export const gguf = {
  u32: (value: number): GgufValue => ({ type: "uint32", value }),
  i32: (value: number): GgufValue => ({ type: "int32", value }),
  f32: (value: number): GgufValue => ({ type: "float32", value }),
  bool: (value: boolean): GgufValue => ({ type: "bool", value }),
  str: (value: string): GgufValue => ({ type: "string", value }),
  array: (itemType: GgufScalarType, values: ArrayLike<GgufScalarValue>): GgufValue => ({
    type: "array",
    itemType,
    values,
  }),
};

/**
 * One tensor to write. `shape` is row-major, outermost first (as the rest of the project and
 * PyTorch write it); GGUF stores dimensions innermost first, which the writer takes care of.
 * `chunks` yields exactly byteLength bytes of little-endian data, lazily, so a converted tensor
 * (permuted or widened) exists only while it is being written.
 */
export interface GgufTensorSource {
  readonly name: string;
  readonly type: GgmlTypeName;
  readonly shape: readonly number[];
  readonly byteLength: number;
  chunks(): Iterable<Uint8Array>;
}

export interface GgufWriteOptions {
  /** Data alignment in bytes, recorded as general.alignment; default 32. */
  readonly alignment?: number;
  /** Called before each tensor's data is written (index, count, name). */
  readonly onTensor?: (index: number, count: number, name: string) => void;
}

export interface GgufWriteSummary {
  readonly bytes: number;
  readonly tensorCount: number;
  readonly metadataCount: number;
}

/** Largest single write: keeps every fs.writeSync call well under the 2 GiB a call can take. */
const MAX_WRITE = 1 << 26;

/** Writes a GGUF v3 file: header, metadata, tensor infos, padding, then each tensor's data aligned. */
export function writeGguf(
  file: string,
  metadata: readonly GgufKv[],
  tensors: readonly GgufTensorSource[],
  opts: GgufWriteOptions = {},
): GgufWriteSummary {
  const alignment = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) {
    throw new Error(`writeGguf ${file}: alignment must be a positive multiple of 8, got ${alignment}`);
  }
  const kvs = [...metadata];
  const keys = new Set<string>();
  for (const { key } of kvs) {
    if (keys.has(key)) throw new Error(`writeGguf ${file}: metadata key "${key}" given twice`);
    if (key === "general.alignment") {
      throw new Error(
        `writeGguf ${file}: pass the alignment as an option; the writer records general.alignment`,
      );
    }
    keys.add(key);
  }
  // Readers default to 32 without the key; stating it keeps the file self-describing.
  kvs.push({ key: "general.alignment", value: gguf.u32(alignment) });

  const head = new ByteSink();
  head.u32(GGUF_MAGIC);
  head.u32(GGUF_VERSION);
  head.u64(BigInt(tensors.length));
  head.u64(BigInt(kvs.length));
  for (const { key, value } of kvs) {
    head.string(key);
    writeValue(head, value, `${file}: metadata "${key}"`);
  }
  const names = new Set<string>();
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    checkTensor(file, t, names);
    head.string(t.name);
    head.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) head.u64(BigInt(t.shape[d]!));
    head.u32(GgmlType[t.type]);
    head.u64(BigInt(offset));
    offsets.push(offset);
    offset = alignUp(offset + t.byteLength, alignment);
  }
  const headerBytes = head.finish();
  const dataStart = alignUp(headerBytes.length, alignment);

  const fd = openSync(file, "w");
  try {
    let at = writeAll(fd, headerBytes, 0);
    at = writePadding(fd, at, dataStart);
    tensors.forEach((t, i) => {
      opts.onTensor?.(i, tensors.length, t.name);
      const start = at;
      for (const chunk of t.chunks()) at = writeAll(fd, chunk, at);
      if (at - start !== t.byteLength) {
        throw new Error(
          `writeGguf ${file}: tensor "${t.name}" produced ${at - start} bytes, expected ${t.byteLength}`,
        );
      }
      at = writePadding(fd, at, dataStart + alignUp(offsets[i]! + t.byteLength, alignment));
    });
    closeSync(fd);
    return { bytes: at, tensorCount: tensors.length, metadataCount: kvs.length };
  } catch (err) {
    // No half-written model left behind for llama.cpp to choke on later.
    closeSync(fd);
    rmSync(file, { force: true });
    throw err;
  }
}

function checkTensor(file: string, t: GgufTensorSource, names: Set<string>): void {
  if (names.has(t.name)) throw new Error(`writeGguf ${file}: tensor "${t.name}" given twice`);
  names.add(t.name);
  if (t.shape.length < 1 || t.shape.length > 4 || t.shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new Error(`writeGguf ${file}: tensor "${t.name}" has an invalid shape [${t.shape.join(", ")}]`);
  }
  const { block, bytes } = GGML_BLOCK[t.type];
  if (t.shape[t.shape.length - 1]! % block !== 0) {
    throw new Error(
      `writeGguf ${file}: tensor "${t.name}" rows of ${t.shape[t.shape.length - 1]} values are not whole ${t.type} blocks of ${block}`,
    );
  }
  const expected = (t.shape.reduce((a, b) => a * b, 1) / block) * bytes;
  if (t.byteLength !== expected) {
    throw new Error(
      `writeGguf ${file}: tensor "${t.name}" declares ${t.byteLength} bytes, ` +
        `its shape [${t.shape.join(", ")}] of ${t.type} needs ${expected}`,
    );
  }
}

function writeValue(sink: ByteSink, v: GgufValue, where: string): void {
  if (v.type === "array") {
    sink.u32(GgufType.array);
    sink.u32(GgufType[v.itemType]);
    sink.u64(BigInt(v.values.length));
    for (let i = 0; i < v.values.length; i++) writeScalar(sink, v.itemType, v.values[i]!, where);
    return;
  }
  sink.u32(GgufType[v.type]);
  writeScalar(sink, v.type, v.value, where);
}

function writeScalar(sink: ByteSink, type: GgufScalarType, x: GgufScalarValue, where: string): void {
  const bad = () => new Error(`writeGguf ${where}: ${typeof x} ${String(x)} is not a valid ${type}`);
  if (type === "string") {
    if (typeof x !== "string") throw bad();
    sink.string(x);
    return;
  }
  if (type === "bool") {
    if (typeof x !== "boolean") throw bad();
    sink.u8(x ? 1 : 0);
    return;
  }
  if (type === "uint64" || type === "int64") {
    if (typeof x !== "bigint" && !(typeof x === "number" && Number.isInteger(x))) throw bad();
    if (type === "uint64") sink.u64(BigInt(x));
    else sink.i64(BigInt(x));
    return;
  }
  if (typeof x !== "number") throw bad();
  const integer = type !== "float32" && type !== "float64";
  if (integer && !Number.isInteger(x)) throw bad();
  const range: Partial<Record<GgufScalarType, [number, number]>> = {
    uint8: [0, 0xff],
    int8: [-0x80, 0x7f],
    uint16: [0, 0xffff],
    int16: [-0x8000, 0x7fff],
    uint32: [0, 0xffffffff],
    int32: [-0x80000000, 0x7fffffff],
  };
  const r = range[type];
  if (r && (x < r[0] || x > r[1])) throw bad();
  sink.number(type, x);
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function writeAll(fd: number, bytes: Uint8Array, at: number): number {
  for (let off = 0; off < bytes.length; off += MAX_WRITE) {
    const part = bytes.subarray(off, Math.min(bytes.length, off + MAX_WRITE));
    let done = 0;
    while (done < part.length) done += writeSync(fd, part, done, part.length - done, at + off + done);
  }
  return at + bytes.length;
}

function writePadding(fd: number, at: number, to: number): number {
  return to > at ? writeAll(fd, new Uint8Array(to - at), at) : at;
}

/** A growable little-endian byte buffer for the header and metadata; each write reserves before reading this.buf (reserving may replace it). */
class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  private len = 0;

  private reserve(n: number): number {
    if (this.len + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    const at = this.len;
    this.len += n;
    return at;
  }

  u8(x: number): void {
    const at = this.reserve(1);
    this.buf.writeUInt8(x, at);
  }
  u32(x: number): void {
    const at = this.reserve(4);
    this.buf.writeUInt32LE(x, at);
  }
  u64(x: bigint): void {
    const at = this.reserve(8);
    this.buf.writeBigUInt64LE(x, at);
  }
  i64(x: bigint): void {
    const at = this.reserve(8);
    this.buf.writeBigInt64LE(x, at);
  }
  number(type: GgufScalarType, x: number): void {
    switch (type) {
      case "uint8":
        {
          const at = this.reserve(1);
          this.buf.writeUInt8(x, at);
        }
        break;
      case "int8":
        {
          const at = this.reserve(1);
          this.buf.writeInt8(x, at);
        }
        break;
      case "uint16":
        {
          const at = this.reserve(2);
          this.buf.writeUInt16LE(x, at);
        }
        break;
      case "int16":
        {
          const at = this.reserve(2);
          this.buf.writeInt16LE(x, at);
        }
        break;
      case "uint32":
        {
          const at = this.reserve(4);
          this.buf.writeUInt32LE(x, at);
        }
        break;
      case "int32":
        {
          const at = this.reserve(4);
          this.buf.writeInt32LE(x, at);
        }
        break;
      case "float32":
        {
          const at = this.reserve(4);
          this.buf.writeFloatLE(x, at);
        }
        break;
      case "float64":
        {
          const at = this.reserve(8);
          this.buf.writeDoubleLE(x, at);
        }
        break;
      default:
        throw new Error(`ByteSink: ${type} is not a number type`);
    }
  }
  /** A GGUF string: uint64 byte length, then UTF-8 bytes (no terminator). */
  string(s: string): void {
    const n = Buffer.byteLength(s, "utf8");
    this.u64(BigInt(n));
    const at = this.reserve(n);
    this.buf.write(s, at, n, "utf8");
  }
  finish(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}
