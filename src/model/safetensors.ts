import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { endianness } from "node:os";
import { allocTensorData, bytesPerElement, type DType, elementCount, type Tensor } from "./tensor.js";

/**
 * Reader for the safetensors format: an 8-byte little-endian header length, a JSON header
 * ({ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: {...} }), then the raw
 * little-endian tensor bytes. Offsets in the header are relative to the end of the header.
 *
 * Everything is validated before any tensor byte is read, and every tensor is read with
 * positioned reads into its own SharedArrayBuffer, so files past 2 GB work and nothing is widened.
 */

/** The safetensors reference implementation refuses headers above 100 MB; so do we. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** One readSync call is kept under 1 GiB (the platform limit is near 2 GiB). */
const MAX_READ_CHUNK = 1 << 30;

/**
 * FP8 (E4M3) weights are read as their bytes and widened with their scales (fp8-weights.ts); U8
 * tensors (gpt-oss's MXFP4 blocks and scales) are read as their bytes and repacked by their reader.
 */
export type StoredDType = DType | "f8_e4m3" | "u8";
const DTYPES: Readonly<Record<string, StoredDType>> = {
  F32: "f32",
  F16: "f16",
  BF16: "bf16",
  F8_E4M3: "f8_e4m3",
  U8: "u8",
};
const storedBytes = (d: StoredDType) => (d === "f8_e4m3" || d === "u8" ? 1 : bytesPerElement(d));

/** Safetensors' own spelling of a dtype (for writing and for messages). */
export const SAFETENSORS_DTYPE: Readonly<Record<DType, string>> = { f32: "F32", f16: "F16", bf16: "BF16" };

export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: StoredDType;
  readonly shape: readonly number[];
  /** Absolute byte offsets in the file (header already added). */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  readonly file: string;
  readonly fileSize: number;
  /** Absolute offset of the first data byte (8 + header length). */
  readonly dataStart: number;
  readonly tensors: ReadonlyMap<string, SafetensorsEntry>;
  readonly metadata: Readonly<Record<string, string>>;
}

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = "SafetensorsError";
  }
}

if (endianness() !== "LE") {
  throw new Error("safetensors data is little-endian; this reader supports little-endian hosts only");
}

function isNonNegativeInt(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** Reads exactly `length` bytes at `position` into `target`, or reports what was cut short. */
function readFully(fd: number, target: Uint8Array, position: number, what: () => string, file: string): void {
  let done = 0;
  while (done < target.length) {
    const want = Math.min(target.length - done, MAX_READ_CHUNK);
    const n = readSync(fd, target, done, want, position + done);
    if (n === 0) throw new SafetensorsError(file, `file ends inside ${what()} (truncated file?)`);
    done += n;
  }
}

function parseEntry(file: string, name: string, raw: unknown, dataStart: number): SafetensorsEntry {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new SafetensorsError(file, `header entry for tensor "${name}" is not an object`);
  }
  const { dtype: rawDtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof rawDtype !== "string") {
    throw new SafetensorsError(file, `tensor "${name}" has no dtype`);
  }
  const dtype = DTYPES[rawDtype];
  if (dtype === undefined) {
    throw new SafetensorsError(
      file,
      `tensor "${name}" has unsupported dtype ${rawDtype} (supported: ${Object.keys(DTYPES).join(", ")})`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
    throw new SafetensorsError(file, `tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !isNonNegativeInt(offsets[0]) ||
    !isNonNegativeInt(offsets[1]) ||
    offsets[1] < offsets[0]
  ) {
    throw new SafetensorsError(
      file,
      `tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)} (want [begin, end], begin <= end)`,
    );
  }
  const [begin, end] = offsets as [number, number];
  const expected = elementCount(shape) * storedBytes(dtype);
  if (end - begin !== expected) {
    throw new SafetensorsError(
      file,
      `tensor "${name}" (${rawDtype} ${JSON.stringify(shape)}) needs ${expected} bytes but its data_offsets span ${end - begin}`,
    );
  }
  return { name, dtype, shape: shape.slice(), begin: dataStart + begin, end: dataStart + end };
}

/** Parses and validates the header of `file` without reading tensor data. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = openSync(file, "r");
  try {
    const fileSize = fstatSync(fd).size;
    if (fileSize < 8)
      throw new SafetensorsError(file, `only ${fileSize} bytes: too short for a safetensors file`);
    const lenBytes = new Uint8Array(8);
    readFully(fd, lenBytes, 0, () => "the header length", file);
    const headerLen = Number(new DataView(lenBytes.buffer).getBigUint64(0, true));
    if (headerLen > MAX_HEADER_BYTES) {
      throw new SafetensorsError(
        file,
        `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`,
      );
    }
    if (8 + headerLen > fileSize) {
      throw new SafetensorsError(
        file,
        `header length ${headerLen} runs past the end of the file (${fileSize} bytes; truncated or not a safetensors file)`,
      );
    }
    const headerBytes = new Uint8Array(headerLen);
    readFully(fd, headerBytes, 8, () => "the header", file);
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(headerBytes));
    } catch (e) {
      throw new SafetensorsError(file, `header is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw new SafetensorsError(file, "header JSON is not an object");
    }
    const dataStart = 8 + headerLen;
    const tensors = new Map<string, SafetensorsEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(json)) {
      if (name === "__metadata__") {
        metadata = parseMetadata(file, raw);
        continue;
      }
      tensors.set(name, parseEntry(file, name, raw, dataStart));
    }
    checkRanges(file, fileSize, tensors);
    return { file, fileSize, dataStart, tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

function parseMetadata(file: string, raw: unknown): Record<string, string> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new SafetensorsError(file, "__metadata__ is not an object of strings");
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== "string") throw new SafetensorsError(file, `__metadata__.${k} is not a string`);
    out[k] = v;
  }
  return out;
}

/** Every tensor lies inside the file and no two share a byte. */
function checkRanges(file: string, fileSize: number, tensors: ReadonlyMap<string, SafetensorsEntry>): void {
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let prev: SafetensorsEntry | undefined;
  for (const t of sorted) {
    if (t.end > fileSize) {
      throw new SafetensorsError(
        file,
        `tensor "${t.name}" ends at byte ${t.end} but the file has only ${fileSize} bytes (truncated file)`,
      );
    }
    if (prev !== undefined && t.begin < prev.end && t.end > t.begin) {
      throw new SafetensorsError(file, `tensors "${prev.name}" and "${t.name}" overlap`);
    }
    if (t.end > t.begin) prev = t;
  }
}

/** An open safetensors file: the validated header plus a descriptor for positioned reads. */
export class SafetensorsFile {
  private fd: number | null;

  private constructor(
    readonly header: SafetensorsHeader,
    fd: number,
  ) {
    this.fd = fd;
  }

  static open(file: string): SafetensorsFile {
    const header = readSafetensorsHeader(file);
    return new SafetensorsFile(header, openSync(file, "r"));
  }

  get file(): string {
    return this.header.file;
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  /** Reads one tensor into fresh SharedArrayBuffer-backed storage in its stored precision. */
  read(name: string): Tensor {
    if (this.fd === null) throw new SafetensorsError(this.file, "file already closed");
    const entry = this.header.tensors.get(name);
    if (entry === undefined) throw new SafetensorsError(this.file, `no tensor named "${name}"`);
    if (entry.dtype === "f8_e4m3" || entry.dtype === "u8")
      throw new SafetensorsError(
        this.file,
        entry.dtype === "u8"
          ? `tensor "${name}" is U8: bytes, not weights (read by the format that stored them)`
          : `tensor "${name}" is FP8 (F8_E4M3): it is read with its scale, as its bytes`,
      );
    const data = allocTensorData(entry.dtype, elementCount(entry.shape));
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    readFully(this.fd, bytes, entry.begin, () => `tensor "${name}"`, this.file);
    return { name, dtype: entry.dtype, shape: entry.shape, data };
  }

  /** One tensor's stored bytes as they lie (FP8 weights, widened by their reader). */
  readBytes(name: string): Uint8Array {
    if (this.fd === null) throw new SafetensorsError(this.file, "file already closed");
    const entry = this.header.tensors.get(name);
    if (entry === undefined) throw new SafetensorsError(this.file, `no tensor named "${name}"`);
    const bytes = new Uint8Array(entry.end - entry.begin);
    readFully(this.fd, bytes, entry.begin, () => `tensor "${name}"`, this.file);
    return bytes;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Reads every tensor (or those in `names`) of one safetensors file. */
export function readSafetensors(file: string, names?: Iterable<string>): Map<string, Tensor> {
  const st = SafetensorsFile.open(file);
  try {
    const out = new Map<string, Tensor>();
    for (const name of names ?? st.header.tensors.keys()) out.set(name, st.read(name));
    return out;
  } finally {
    st.close();
  }
}
