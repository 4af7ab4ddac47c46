import { writeFileSync } from "node:fs";
import { SAFETENSORS_DTYPE } from "../../src/model/safetensors.js";
import { floatTensor, type Tensor } from "../../src/model/tensor.js";

/** A tensor as a safetensors file holds it: its dtype as spelled there, and its bytes. */
export interface RawTensor {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

/** A float tensor as raw bytes in its own dtype. */
export function rawTensor(t: Tensor): RawTensor {
  const f = floatTensor(t, "rawTensor");
  return {
    name: f.name,
    dtype: SAFETENSORS_DTYPE[f.dtype],
    shape: f.shape,
    bytes: new Uint8Array(f.data.buffer, f.data.byteOffset, f.data.byteLength),
  };
}

/**
 * A safetensors file of raw tensors (dtype strings as given): checkpoints in the formats the
 * engine reads but never writes (FP8, gpt-oss's MXFP4 blocks).
 */
export function writeRawSafetensors(file: string, tensors: readonly RawTensor[]): void {
  const header: Record<string, unknown> = {};
  let at = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.bytes.length] };
    at += t.bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, ...tensors.map((t) => Buffer.from(t.bytes))]));
}
