import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { loadLlama2cTokenizer } from "../tokenizer/index.js";
import { readLlama2cCheckpoint } from "./llama2c-checkpoint.js";
import type { LoadedModel } from "./types.js";

export interface Llama2cLoadOptions {
  /** The llama2.c tokenizer .bin; by default tokenizer.bin or tok<vocab>.bin beside the checkpoint. */
  readonly tokenizerPath?: string;
  /** False: the header and file size are checked, no tensor is read (`weights` is empty). */
  readonly weights?: boolean;
}

/**
 * Loads a llama2.c checkpoint with its tokenizer. run.c ends a sample when the model emits BOS
 * (1), which is how TinyStories models end a story, so BOS joins EOS (2) as a stop token.
 */
export async function loadLlama2cModel(file: string, opts: Llama2cLoadOptions = {}): Promise<LoadedModel> {
  const ckpt = readLlama2cCheckpoint(file, { data: opts.weights !== false });
  const tokenizerPath = opts.tokenizerPath ?? findLlama2cTokenizer(file, ckpt.config.vocabSize);
  const tokenizer = await loadLlama2cTokenizer(tokenizerPath, { vocabSize: ckpt.config.vocabSize });
  return {
    config: ckpt.config,
    weights: ckpt.weights,
    embedDtype: "f32",
    tokenizer,
    generation: { eosTokenIds: [2, 1] },
    source: {
      kind: "llama2c",
      path: file,
      label: `${path.basename(file)} (llama2.c)`,
      tokenizerPath,
    },
  };
}

/** tokenizer.bin, tok<vocab>.bin, or the only tok*.bin beside the checkpoint. */
export function findLlama2cTokenizer(checkpoint: string, vocabSize: number): string {
  const dir = path.dirname(checkpoint);
  for (const name of ["tokenizer.bin", `tok${vocabSize}.bin`]) {
    const p = path.join(dir, name);
    if (existsSync(p)) return p;
  }
  const candidates = readdirSync(dir).filter(
    (f) => /^tok.*\.bin$/.test(f) && path.join(dir, f) !== checkpoint,
  );
  if (candidates.length === 1) return path.join(dir, candidates[0]!);
  throw new Error(
    `${checkpoint}: no llama2.c tokenizer found beside it (looked for tokenizer.bin, tok${vocabSize}.bin` +
      (candidates.length > 1 ? `; several candidates: ${candidates.join(", ")}` : "") +
      "); pass the tokenizer path explicitly",
  );
}
