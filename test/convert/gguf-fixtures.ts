// Shared by the per-family GGUF tests: a tiny model's round trip through our writer and loader, and
// the smallest files the loader gets far enough into to refuse them by what they say.
import assert from "node:assert/strict";
import { GgmlType, type GgmlTypeName, type GgufScalarType, GgufType } from "../../src/convert/gguf-format.js";
import { type GgufScalarValue, gguf, writeGguf } from "../../src/convert/gguf-writer.js";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { engineBackends } from "../helpers/backends.js";
import { generateAlone } from "../helpers/engine-driver.js";
import { type TinyVariant, writeTinyModel } from "../helpers/tiny-models.js";
import { readGguf } from "./gguf-reader.js";

/**
 * Writes the tiny `variant` in `dir`, exports it to `dir`.gguf as llama.cpp's `arch`, and checks
 * that the file loads back with the same config and gives the same 20 greedy tokens.
 */
export async function ggufRoundTrip(
  dir: string,
  variant: TinyVariant,
  arch: string,
): Promise<{ model: LoadedModel; file: string }> {
  writeTinyModel(dir, variant);
  const model = await loadModel(dir);
  const file = `${dir}.gguf`;
  assert.equal(modelToGguf(model, file).architecture, arch);
  const back = await loadModel(file);
  assert.deepEqual(back.config, model.config);
  const backend = engineBackends()[0]!.backend;
  const ids = model.tokenizer.encode("Hello, world");
  assert.deepEqual(await generateAlone(back, backend, ids, 20), await generateAlone(model, backend, ids, 20));
  return { model, file };
}

/** An f32 tensor of ones for writeGguf. */
export function onesF32(name: string, shape: number[]) {
  const data = new Float32Array(shape.reduce((x, y) => x * y, 1)).fill(1);
  return {
    name,
    type: "f32" as const,
    shape,
    byteLength: data.byteLength,
    *chunks() {
      yield new Uint8Array(data.buffer);
    },
  };
}

/** The metadata a one-layer `arch` file needs before the loader reads anything family-specific. */
export function minimalMeta(arch: string) {
  return [
    { key: "general.architecture", value: gguf.str(arch) },
    { key: `${arch}.block_count`, value: gguf.u32(1) },
    { key: `${arch}.context_length`, value: gguf.u32(16) },
    { key: `${arch}.embedding_length`, value: gguf.u32(8) },
    { key: `${arch}.feed_forward_length`, value: gguf.u32(16) },
    { key: `${arch}.attention.head_count`, value: gguf.u32(2) },
  ];
}

/**
 * Rewrites a GGUF file with some metadata changed (`edit` gets and returns key → value, values as
 * the test reader gives them, each written back with its original type), tensors as they were.
 */
export function rewriteGgufMetadata(
  from: string,
  to: string,
  edit: (m: Map<string, unknown>) => Map<string, unknown>,
): void {
  const g = readGguf(from);
  const typeName = (code: string) =>
    (Object.entries(GgufType).find(([, c]) => String(c) === code)?.[0] ?? "string") as GgufScalarType;
  const kvs = [...edit(new Map(g.metadata))]
    .filter(([key]) => key !== "general.alignment")
    .map(([key, value]) => {
      const t = g.metadataTypes.get(key) ?? (typeof value === "string" ? "8" : "4");
      return t.startsWith("array:")
        ? { key, value: gguf.array(typeName(t.slice(6)), value as GgufScalarValue[]) }
        : { key, value: { type: typeName(t), value: value as GgufScalarValue } };
    });
  const names = Object.fromEntries(Object.entries(GgmlType).map(([n, c]) => [c, n])) as Record<
    number,
    GgmlTypeName
  >;
  const tensors = [...g.tensors.values()].map((t) => ({
    name: t.name,
    type: names[t.type]!,
    shape: t.shape,
    byteLength: t.data.byteLength,
    *chunks() {
      yield t.data;
    },
  }));
  writeGguf(to, kvs, tensors, { alignment: g.alignment });
}
