import { closeSync, openSync, writeSync } from "node:fs";
import { SAFETENSORS_DTYPE } from "./safetensors.js";
import { bytesPerElement, elementCount, floatTensor, type Tensor } from "./tensor.js";

/**
 * Writes tensors as one safetensors file (little-endian, header padded with spaces to a multiple
 * of 8 bytes as the reference implementation does, tensors in the order given). Data is written
 * straight from each tensor's storage, so nothing is converted.
 */
export function writeSafetensors(
  file: string,
  tensors: Iterable<Tensor>,
  metadata: Readonly<Record<string, string>> = {},
): void {
  const list = [...tensors];
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const tensor of list) {
    const t = floatTensor(tensor, `writeSafetensors ${file}`);
    const bytes = elementCount(t.shape) * bytesPerElement(t.dtype);
    if (t.data.byteLength !== bytes) {
      throw new Error(
        `writeSafetensors ${file}: tensor "${t.name}" has ${t.data.byteLength} bytes of data, shape needs ${bytes}`,
      );
    }
    if (t.name in header) throw new Error(`writeSafetensors ${file}: tensor "${t.name}" given twice`);
    header[t.name] = {
      dtype: SAFETENSORS_DTYPE[t.dtype],
      shape: t.shape,
      data_offsets: [offset, offset + bytes],
    };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const rawLen = Buffer.byteLength(json, "utf8");
  json += " ".repeat((8 - (rawLen % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));

  const fd = openSync(file, "w");
  try {
    writeAll(fd, prefix);
    writeAll(fd, headerBytes);
    for (const t of list) writeAll(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
}
