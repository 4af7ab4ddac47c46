import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadLlama2cModel } from "./llama2c-loader.js";
import type { LoadedModel } from "./types.js";

/**
 * The built-in default model (no `--model`, or `--model demo`): Karpathy's stories260K, a
 * 260K-parameter Llama-2-architecture model trained on TinyStories, in llama2.c format with its
 * 512-token tokenizer. It ships inside the package (models/stories260K: MIT, see the LICENSE and
 * README there), so `lamina serve` tells small stories with no download.
 */
export const BUILTIN_MODEL_NAME = "stories260K";
export const BUILTIN_MODEL_LABEL = "stories260K (built-in demo: a 260K-parameter TinyStories model)";
export const BUILTIN_CHECKPOINT = "stories260K.bin";
export const BUILTIN_TOKENIZER = "tok512.bin";

/** models/stories260K in the installed package, found from this file rather than the working directory. */
export function builtinModelDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // dist/src/model → the package root is three levels up; src/model → two.
  const tried: string[] = [];
  for (const up of ["../../..", "../.."]) {
    const dir = path.resolve(here, up, "models", BUILTIN_MODEL_NAME);
    if (existsSync(path.join(dir, BUILTIN_CHECKPOINT))) return dir;
    tried.push(dir);
  }
  throw new Error(
    `the built-in ${BUILTIN_MODEL_NAME} model is missing from the package (looked in ${tried.join(", ")}); ` +
      "reinstall the package, or pass --model",
  );
}

export async function loadBuiltinModel(opts: { readonly weights?: boolean } = {}): Promise<LoadedModel> {
  const dir = builtinModelDir();
  const model = await loadLlama2cModel(path.join(dir, BUILTIN_CHECKPOINT), {
    tokenizerPath: path.join(dir, BUILTIN_TOKENIZER),
    ...(opts.weights === false ? { weights: false } : {}),
  });
  return { ...model, source: { ...model.source, label: BUILTIN_MODEL_LABEL } };
}
