import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { type SafetensorsEntry, SafetensorsFile } from "./safetensors.js";
import type { Tensor } from "./tensor.js";

/**
 * The safetensors side of a Hugging Face model directory: either one model.safetensors, a
 * sharded set listed by model.safetensors.index.json (weight_map: tensor name → shard file), or,
 * without an index, every *.safetensors file in the directory (no name may repeat).
 * Headers of all shards are read and validated up front; tensor data is read on demand.
 */
export class SafetensorsCheckpoint {
  private constructor(
    readonly dir: string,
    private readonly shards: readonly SafetensorsFile[],
    private readonly byName: ReadonlyMap<string, SafetensorsFile>,
  ) {}

  static open(dir: string): SafetensorsCheckpoint {
    const indexPath = path.join(dir, "model.safetensors.index.json");
    const opened: SafetensorsFile[] = [];
    try {
      const byName = new Map<string, SafetensorsFile>();
      if (existsSync(indexPath)) {
        const weightMap = readWeightMap(indexPath);
        const shardByFile = new Map<string, SafetensorsFile>();
        for (const [name, shardName] of weightMap) {
          let shard = shardByFile.get(shardName);
          if (shard === undefined) {
            const shardPath = path.join(dir, shardName);
            if (!existsSync(shardPath)) {
              throw new Error(`${indexPath}: shard "${shardName}" (holding "${name}") does not exist`);
            }
            shard = SafetensorsFile.open(shardPath);
            opened.push(shard);
            shardByFile.set(shardName, shard);
          }
          if (!shard.has(name)) {
            throw new Error(
              `${indexPath}: says "${name}" is in ${shardName}, but ${shard.file} has no such tensor`,
            );
          }
          byName.set(name, shard);
        }
      } else {
        const files = readdirSync(dir)
          .filter((f) => f.endsWith(".safetensors"))
          .sort();
        if (files.length === 0) {
          throw new Error(`${dir}: no model.safetensors, model.safetensors.index.json or *.safetensors file`);
        }
        for (const f of files) {
          const shard = SafetensorsFile.open(path.join(dir, f));
          opened.push(shard);
          for (const name of shard.header.tensors.keys()) {
            const other = byName.get(name);
            if (other !== undefined) {
              throw new Error(`${dir}: tensor "${name}" appears in both ${other.file} and ${shard.file}`);
            }
            byName.set(name, shard);
          }
        }
      }
      return new SafetensorsCheckpoint(dir, opened, byName);
    } catch (e) {
      for (const s of opened) s.close();
      throw e;
    }
  }

  get tensorNames(): IterableIterator<string> {
    return this.byName.keys();
  }

  /** Where a tensor lives and what its header says, without reading it. */
  describe(name: string): { file: string; entry: SafetensorsEntry } | undefined {
    const shard = this.byName.get(name);
    if (shard === undefined) return undefined;
    return { file: shard.file, entry: shard.header.tensors.get(name)! };
  }

  read(name: string): Tensor {
    const shard = this.byName.get(name);
    if (shard === undefined) throw new Error(`${this.dir}: no tensor named "${name}" in the checkpoint`);
    return shard.read(name);
  }

  readBytes(name: string): Uint8Array {
    const shard = this.byName.get(name);
    if (shard === undefined) throw new Error(`${this.dir}: no tensor named "${name}" in the checkpoint`);
    return shard.readBytes(name);
  }

  /** Total bytes of tensor data (for progress reporting). */
  byteSize(names: Iterable<string>): number {
    let n = 0;
    for (const name of names) {
      const d = this.describe(name);
      if (d) n += d.entry.end - d.entry.begin;
    }
    return n;
  }

  close(): void {
    for (const s of this.shards) s.close();
  }
}

function readWeightMap(indexPath: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(indexPath, "utf8"));
  } catch (e) {
    throw new Error(`${indexPath}: not valid JSON: ${(e as Error).message}`);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    throw new Error(`${indexPath}: missing "weight_map" object (tensor name → shard file)`);
  }
  const out = new Map<string, string>();
  for (const [name, file] of Object.entries(weightMap)) {
    if (typeof file !== "string" || file.includes("/") || file.includes("\\") || file.startsWith(".")) {
      throw new Error(`${indexPath}: weight_map["${name}"] must be a shard file name in the same directory`);
    }
    out.set(name, file);
  }
  return out;
}
