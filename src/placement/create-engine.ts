import { existsSync } from "node:fs";
import path from "node:path";
import { createByteTokenizer, loadHfTokenizer, loadLlama2cTokenizer } from "../tokenizer/index.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { WorkerEngineClient } from "./engine-client.js";
import type { EngineOptions } from "./options.js";

export type { EngineOptions } from "./options.js";

/**
 * Starts the engine in its own worker thread and resolves once the model is loaded. The main
 * thread keeps only a tokenizer (for chat templates and prompt encoding); weights, KV and the
 * decode loop live in the engine thread.
 */
export async function createEngine(
  options: EngineOptions = {},
  log?: (line: string) => void,
): Promise<WorkerEngineClient> {
  return WorkerEngineClient.start(
    options,
    async (ready) => {
      const src = ready.source;
      if (src.kind === "demo") return createByteTokenizer();
      if (src.kind === "hf") return loadHfTokenizer(src.path);
      return loadLlama2cTokenizer(
        options.tokenizerPath ?? src.tokenizerPath ?? findLlama2cTokenizer(src.path),
      );
    },
    log,
  );
}

/** The tokenizer file conventionally kept beside a llama2.c checkpoint. */
export function findLlama2cTokenizer(binPath: string): string {
  const dir = path.dirname(binPath);
  for (const name of ["tokenizer.bin", "tok512.bin", "tok4096.bin"]) {
    const p = path.join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new Error(
    `no tokenizer found beside ${binPath} (looked for tokenizer.bin, tok*.bin); pass --tokenizer`,
  );
}

export type { Tokenizer };
