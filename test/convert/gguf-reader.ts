import { readFileSync } from "node:fs";

/** A GGUF file read back, for tests: typed metadata and tensors with their raw bytes. */
export interface GgufFile {
  readonly version: number;
  /** Scalars as numbers/bigints/booleans/strings; arrays as plain arrays. */
  readonly metadata: Map<string, unknown>;
  /** The type code of each metadata value (and, for arrays, "array:<item code>"). */
  readonly metadataTypes: Map<string, string>;
  readonly tensors: Map<string, GgufTensor>;
  readonly alignment: number;
  readonly dataStart: number;
}

export interface GgufTensor {
  readonly name: string;
  /** Row-major, outermost first (GGUF stores the reverse). */
  readonly shape: number[];
  readonly type: number;
  readonly offset: number;
  readonly data: Uint8Array;
}

const TYPE_SIZE: Record<number, number> = { 0: 4, 1: 2, 30: 2 };

/** An independent, minimal GGUF v3 reader (the writer's tests must not trust the writer's own code). */
export function readGguf(file: string): GgufFile {
  const buf = readFileSync(file);
  let at = 0;
  const u32 = () => {
    const v = buf.readUInt32LE(at);
    at += 4;
    return v;
  };
  const u64 = () => {
    const v = buf.readBigUInt64LE(at);
    at += 8;
    return Number(v);
  };
  const str = () => {
    const n = u64();
    const s = buf.toString("utf8", at, at + n);
    at += n;
    return s;
  };
  const scalar = (type: number): unknown => {
    const read = <T>(fn: (o: number) => T, size: number): T => {
      const v = fn.call(buf, at);
      at += size;
      return v;
    };
    switch (type) {
      case 0:
        return read(buf.readUInt8, 1);
      case 1:
        return read(buf.readInt8, 1);
      case 2:
        return read(buf.readUInt16LE, 2);
      case 3:
        return read(buf.readInt16LE, 2);
      case 4:
        return read(buf.readUInt32LE, 4);
      case 5:
        return read(buf.readInt32LE, 4);
      case 6:
        return read(buf.readFloatLE, 4);
      case 7:
        return read(buf.readUInt8, 1) !== 0;
      case 8:
        return str();
      case 10:
        return read(buf.readBigUInt64LE, 8);
      case 11:
        return read(buf.readBigInt64LE, 8);
      case 12:
        return read(buf.readDoubleLE, 8);
      default:
        throw new Error(`${file}: unknown GGUF value type ${type} at byte ${at}`);
    }
  };

  if (buf.toString("latin1", 0, 4) !== "GGUF") throw new Error(`${file}: no GGUF magic`);
  at = 4;
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const metadata = new Map<string, unknown>();
  const metadataTypes = new Map<string, string>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const type = u32();
    if (type === 9) {
      const itemType = u32();
      const n = u64();
      const values: unknown[] = [];
      for (let j = 0; j < n; j++) values.push(scalar(itemType));
      metadata.set(key, values);
      metadataTypes.set(key, `array:${itemType}`);
    } else {
      metadata.set(key, scalar(type));
      metadataTypes.set(key, String(type));
    }
  }
  const infos: Omit<GgufTensor, "data">[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nDims = u32();
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(u64());
    const type = u32();
    const offset = u64();
    infos.push({ name, shape: dims.reverse(), type, offset });
  }
  const alignment = (metadata.get("general.alignment") as number | undefined) ?? 32;
  const dataStart = Math.ceil(at / alignment) * alignment;
  const tensors = new Map<string, GgufTensor>();
  for (const t of infos) {
    const size = t.shape.reduce((a, b) => a * b, 1) * (TYPE_SIZE[t.type] ?? Number.NaN);
    const start = dataStart + t.offset;
    if (!(start + size <= buf.length)) throw new Error(`${file}: tensor ${t.name} runs past the end`);
    tensors.set(t.name, { ...t, data: new Uint8Array(buf.buffer, buf.byteOffset + start, size) });
  }
  return { version, metadata, metadataTypes, tensors, alignment, dataStart };
}
