import type { Tokenizer } from "../tokenizer/types.js";
import { WorkerEngineClient } from "./engine-client.js";
import { loadTokenizerFor } from "./load-tokenizer.js";
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
    (ready) => loadTokenizerFor(ready.source, options.tokenizerPath),
    log,
  );
}

export type { Tokenizer };
