// Seeded random-weight Hugging Face directories for benchmarks: timing depends on the shape, not
// on the values. Written into `<dir>.partial` and renamed, so an interrupted run never leaves a
// directory that looks complete.
import { mkdirSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { parseHfConfig } from "../../src/model/hf-config.js";
import { randomWeights } from "../../src/model/random-weights.js";
import { writeSafetensors } from "../../src/model/safetensors-writer.js";
import type { DType } from "../../src/model/tensor.js";
import { writeByteTokenizer, writeJson } from "./byte-tokenizer.js";

export const TORCH_DTYPE: Record<DType, string> = { f32: "float32", f16: "float16", bf16: "bfloat16" };

/**
 * Writes `dir`: config.json as given, model.safetensors with seeded random weights in `dtype`, and
 * the byte-level tokenizer (`prependBos`: see writeByteTokenizer). Replaces whatever was there.
 */
export function writeRandomModelDir(
  dir: string,
  configJson: Record<string, unknown>,
  dtype: DType,
  seed: number,
  prependBos = false,
): void {
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const configFile = path.join(partial, "config.json");
  const config = parseHfConfig(configJson, configFile);
  const weights = randomWeights(config, { dtype, seed, embedStd: 0.5, normSpread: 0.1 });
  writeSafetensors(path.join(partial, "model.safetensors"), weights.values(), { format: "pt" });
  writeByteTokenizer(partial, prependBos);
  writeJson(configFile, configJson);
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
}
