import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { endianness } from "node:os";
import { allocSharedBytes } from "./tensor.js";

/**
 * Runtime reader for GGUF (ggml's model container, versions 2 and 3): the header, typed
 * metadata and tensor descriptions are parsed and bounds-checked up front; tensor bytes are read
 * lazily, one tensor at a time, with positioned reads into SharedArrayBuffer-backed storage.
 * Every error names the file and the key or tensor it concerns.
 */

const GGUF_MAGIC = 0x46554747; // "GGUF" as a little-endian uint32
const DEFAULT_ALIGNMENT = 32;
/** One readSync call is kept under 1 GiB (the platform limit is near 2 GiB). */
const MAX_READ_CHUNK = 1 << 30;
/** How much of the header is read from the file at a time. */
const HEADER_WINDOW = 1 << 20;

/** A metadata value: scalars as JS values (64-bit integers as bigint), arrays as plain arrays. */
export type GgufMetaValue = number | bigint | boolean | string | GgufMetaValue[];

/** ggml tensor types this reader knows the size of: elements per block and bytes per block. */
export const GGML_TYPES: Readonly<Record<number, { name: string; block: number; bytes: number }>> = {
  0: { name: "F32", block: 1, bytes: 4 },
  1: { name: "F16", block: 1, bytes: 2 },
  2: { name: "Q4_0", block: 32, bytes: 18 },
  3: { name: "Q4_1", block: 32, bytes: 20 },
  6: { name: "Q5_0", block: 32, bytes: 22 },
  7: { name: "Q5_1", block: 32, bytes: 24 },
  8: { name: "Q8_0", block: 32, bytes: 34 },
  10: { name: "Q2_K", block: 256, bytes: 84 },
  11: { name: "Q3_K", block: 256, bytes: 110 },
  12: { name: "Q4_K", block: 256, bytes: 144 },
  13: { name: "Q5_K", block: 256, bytes: 176 },
  14: { name: "Q6_K", block: 256, bytes: 210 },
  // The lattice formats (named, so a file holding them is refused by type, not as unreadable).
  16: { name: "IQ2_XXS", block: 256, bytes: 66 },
  17: { name: "IQ2_XS", block: 256, bytes: 74 },
  18: { name: "IQ3_XXS", block: 256, bytes: 98 },
  19: { name: "IQ1_S", block: 256, bytes: 50 },
  20: { name: "IQ4_NL", block: 32, bytes: 18 },
  21: { name: "IQ3_S", block: 256, bytes: 110 },
  22: { name: "IQ2_S", block: 256, bytes: 82 },
  23: { name: "IQ4_XS", block: 256, bytes: 136 },
  29: { name: "IQ1_M", block: 256, bytes: 56 },
  30: { name: "BF16", block: 1, bytes: 2 },
  39: { name: "MXFP4", block: 32, bytes: 17 },
};

export interface GgufTensorInfo {
  readonly name: string;
  /** ggml_type code and its name ("Q4_K"). */
  readonly type: number;
  readonly typeName: string;
  /** Row-major, outermost first (GGUF stores dimensions innermost first). */
  readonly shape: readonly number[];
  /** Absolute offset of the data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

export class GgufError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = "GgufError";
  }
}

if (endianness() !== "LE") throw new Error("GGUF files are read on little-endian hosts only");

/** Sequential reads of the header through a window of the file, with bounds checks. */
class HeaderCursor {
  pos = 0;
  private buf = Buffer.alloc(0);
  private bufStart = 0;

  constructor(
    private readonly fd: number,
    readonly file: string,
    readonly size: number,
  ) {}

  private ensure(n: number, what: string): number {
    if (this.pos + n > this.size) {
      throw new GgufError(this.file, `file ends inside ${what} at byte ${this.pos} (truncated file?)`);
    }
    const rel = this.pos - this.bufStart;
    if (rel + n <= this.buf.length) return rel;
    const len = Math.min(Math.max(n, HEADER_WINDOW), this.size - this.pos);
    this.buf = Buffer.alloc(len);
    readFully(this.fd, this.buf, this.pos, what, this.file);
    this.bufStart = this.pos;
    return 0;
  }

  u8(what: string): number {
    const at = this.ensure(1, what);
    this.pos += 1;
    return this.buf[at]!;
  }
  u32(what: string): number {
    const at = this.ensure(4, what);
    this.pos += 4;
    return this.buf.readUInt32LE(at);
  }
  /** A uint64 that must fit a safe integer (counts, lengths, offsets, dimensions). */
  count(what: string): number {
    const at = this.ensure(8, what);
    this.pos += 8;
    const v = this.buf.readBigUInt64LE(at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError(this.file, `${what} is too large (${v})`);
    return Number(v);
  }
  scalar(type: number, what: string): number | bigint | boolean {
    const size = SCALAR_SIZE[type];
    if (size === undefined) throw new GgufError(this.file, `${what} has unknown value type ${type}`);
    const at = this.ensure(size, what);
    this.pos += size;
    const b = this.buf;
    const readers: Record<number, () => number | bigint | boolean> = {
      0: () => b.readUInt8(at),
      1: () => b.readInt8(at),
      2: () => b.readUInt16LE(at),
      3: () => b.readInt16LE(at),
      4: () => b.readUInt32LE(at),
      5: () => b.readInt32LE(at),
      6: () => shortestF32(b.readFloatLE(at)),
      7: () => b.readUInt8(at) !== 0,
      10: () => b.readBigUInt64LE(at),
      11: () => b.readBigInt64LE(at),
      12: () => b.readDoubleLE(at),
    };
    return readers[type]!();
  }
  string(what: string): string {
    const n = this.count(`the length of ${what}`);
    if (n > this.size - this.pos) {
      throw new GgufError(
        this.file,
        `${what}: string of ${n} bytes runs past the end of the file (truncated?)`,
      );
    }
    const at = this.ensure(n, what);
    this.pos += n;
    return this.buf.toString("utf8", at, at + n);
  }
}

/**
 * A float32 as the shortest decimal that rounds to it (1e-5, not 0.000009999999747378752), which
 * is the value the writer meant; it is the same float32.
 */
export function shortestF32(x: number): number {
  if (!Number.isFinite(x)) return x;
  for (let digits = 1; digits < 9; digits++) {
    const d = Number(x.toPrecision(digits));
    if (Math.fround(d) === x) return d;
  }
  return x;
}

/** Byte sizes of the scalar metadata types (string and array are variable). */
const SCALAR_SIZE: Readonly<Record<number, number>> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};
const STRING = 8;
const ARRAY = 9;

function readFully(fd: number, target: Uint8Array, position: number, what: string, file: string): void {
  let done = 0;
  while (done < target.length) {
    const want = Math.min(target.length - done, MAX_READ_CHUNK);
    const n = readSync(fd, target, done, want, position + done);
    if (n === 0) throw new GgufError(file, `file ends inside ${what} (truncated file?)`);
    done += n;
  }
}

function readValue(c: HeaderCursor, type: number, key: string): GgufMetaValue {
  const what = `metadata "${key}"`;
  if (type === STRING) return c.string(what);
  if (type !== ARRAY) return c.scalar(type, what);
  const itemType = c.u32(`the item type of ${what}`);
  const n = c.count(`the length of ${what}`);
  const minSize = itemType === STRING ? 8 : (SCALAR_SIZE[itemType] ?? 1);
  if (itemType !== STRING && SCALAR_SIZE[itemType] === undefined) {
    throw new GgufError(c.file, `${what} is an array of unsupported item type ${itemType}`);
  }
  if (n * minSize > c.size - c.pos) {
    throw new GgufError(c.file, `${what}: array of ${n} items runs past the end of the file (truncated?)`);
  }
  const out: GgufMetaValue[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = itemType === STRING ? c.string(what) : c.scalar(itemType, what);
  return out;
}

export interface GgufHeader {
  readonly file: string;
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufMetaValue>;
  readonly tensors: ReadonlyMap<string, GgufTensorInfo>;
  readonly alignment: number;
  readonly dataStart: number;
}

function readPreamble(c: HeaderCursor): { version: number; nTensors: number; nKv: number } {
  if (c.size < 4) throw new GgufError(c.file, `only ${c.size} bytes: too short for a GGUF file`);
  const magic = c.u32("the magic number");
  if (magic !== GGUF_MAGIC) {
    throw new GgufError(
      c.file,
      `bad magic 0x${magic.toString(16).padStart(8, "0")} (want "GGUF"): not a GGUF file`,
    );
  }
  const version = c.u32("the version");
  if (version !== 2 && version !== 3) {
    throw new GgufError(c.file, `GGUF version ${version} is not supported (supported: 2, 3)`);
  }
  const nTensors = c.count("the tensor count");
  const nKv = c.count("the metadata count");
  return { version, nTensors, nKv };
}

function readTensorInfo(c: HeaderCursor): Omit<GgufTensorInfo, "offset"> & { rel: number } {
  const name = c.string("a tensor name");
  const what = `tensor "${name}"`;
  const nDims = c.u32(`the dimension count of ${what}`);
  if (nDims < 1 || nDims > 4) throw new GgufError(c.file, `${what} has ${nDims} dimensions (want 1 to 4)`);
  const dims: number[] = [];
  for (let d = 0; d < nDims; d++) dims.push(c.count(`a dimension of ${what}`));
  const type = c.u32(`the type of ${what}`);
  const rel = c.count(`the offset of ${what}`);
  const t = GGML_TYPES[type];
  if (t === undefined) throw new GgufError(c.file, `${what} has unknown ggml tensor type ${type}`);
  const elements = dims.reduce((a, b) => a * b, 1);
  if (dims[0]! % t.block !== 0) {
    throw new GgufError(
      c.file,
      `${what}: row length ${dims[0]} is not a multiple of the ${t.name} block size ${t.block}`,
    );
  }
  const byteLength = (elements / t.block) * t.bytes;
  return { name, type, typeName: t.name, shape: dims.reverse(), byteLength, rel };
}

/** No two tensors share a byte of data. */
function checkOverlaps(file: string, tensors: ReadonlyMap<string, GgufTensorInfo>): void {
  let prev: GgufTensorInfo | undefined;
  for (const t of [...tensors.values()].sort((a, b) => a.offset - b.offset)) {
    if (prev !== undefined && t.offset < prev.offset + prev.byteLength && t.byteLength > 0) {
      throw new GgufError(file, `tensors "${prev.name}" and "${t.name}" overlap`);
    }
    if (t.byteLength > 0) prev = t;
  }
}

/** Parses and validates the header of `file` (metadata, tensor infos) without reading tensor data. */
export function readGgufHeader(file: string): GgufHeader {
  const fd = openSync(file, "r");
  try {
    const c = new HeaderCursor(fd, file, fstatSync(fd).size);
    const { version, nTensors, nKv } = readPreamble(c);
    const metadata = new Map<string, GgufMetaValue>();
    for (let i = 0; i < nKv; i++) {
      const key = c.string(`metadata key #${i}`);
      const type = c.u32(`the value type of metadata "${key}"`);
      if (metadata.has(key)) throw new GgufError(file, `metadata key "${key}" appears twice`);
      metadata.set(key, readValue(c, type, key));
    }
    const alignment = metadata.get("general.alignment") ?? DEFAULT_ALIGNMENT;
    if (typeof alignment !== "number" || !Number.isInteger(alignment) || alignment <= 0) {
      throw new GgufError(file, `general.alignment ${String(alignment)} is not a positive integer`);
    }
    const infos: ReturnType<typeof readTensorInfo>[] = [];
    for (let i = 0; i < nTensors; i++) infos.push(readTensorInfo(c));
    const dataStart = Math.ceil(c.pos / alignment) * alignment;
    const tensors = new Map<string, GgufTensorInfo>();
    for (const { rel, ...t } of infos) {
      if (tensors.has(t.name)) throw new GgufError(file, `tensor "${t.name}" appears twice`);
      if (rel % alignment !== 0) {
        throw new GgufError(file, `tensor "${t.name}" offset ${rel} is not aligned to ${alignment} bytes`);
      }
      const offset = dataStart + rel;
      if (offset + t.byteLength > c.size) {
        throw new GgufError(
          file,
          `tensor "${t.name}" (${t.typeName} ${JSON.stringify(t.shape)}) ends at byte ${offset + t.byteLength} ` +
            `but the file has only ${c.size} bytes (truncated file)`,
        );
      }
      tensors.set(t.name, { ...t, offset });
    }
    checkOverlaps(file, tensors);
    return { file, version, metadata, tensors, alignment, dataStart };
  } finally {
    closeSync(fd);
  }
}

/** An open GGUF file: the validated header and a descriptor for reading tensor data on demand. */
export class GgufFile {
  private fd: number | null;

  private constructor(
    readonly header: GgufHeader,
    fd: number,
  ) {
    this.fd = fd;
  }

  static open(file: string): GgufFile {
    const header = readGgufHeader(file);
    return new GgufFile(header, openSync(file, "r"));
  }

  get file(): string {
    return this.header.file;
  }

  tensor(name: string): GgufTensorInfo {
    const t = this.header.tensors.get(name);
    if (t === undefined) throw new GgufError(this.file, `no tensor named "${name}"`);
    return t;
  }

  /** The raw bytes of one tensor, in fresh SharedArrayBuffer-backed storage (allocSharedBytes). */
  readBytes(name: string): Uint8Array {
    if (this.fd === null) throw new GgufError(this.file, "file already closed");
    const t = this.tensor(name);
    const bytes = allocSharedBytes(t.byteLength);
    readFully(this.fd, bytes, t.offset, `tensor "${name}"`, this.file);
    return bytes;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
