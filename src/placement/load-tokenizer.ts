import { loadGgufTokenizer } from "../model/gguf-loader.js";
import type { ModelSource } from "../model/types.js";
import { createByteTokenizer, loadHfTokenizer, loadLlama2cTokenizer } from "../tokenizer/index.js";
import type { Tokenizer } from "../tokenizer/types.js";

/**
 * The tokenizer of a loaded model's source, for threads that hold no model (the HTTP thread, the
 * tokenizer thread): the model loader has already found the file (a llama2.c source names it).
 */
export async function loadTokenizerFor(src: ModelSource, tokenizerPath?: string): Promise<Tokenizer> {
  if (src.kind === "demo") return createByteTokenizer();
  if (src.kind === "hf") return loadHfTokenizer(src.path);
  if (src.kind === "gguf") return loadGgufTokenizer(src.path);
  const file = tokenizerPath ?? src.tokenizerPath;
  if (!file) throw new Error(`no tokenizer is known for ${src.path}; pass --tokenizer`);
  return loadLlama2cTokenizer(file);
}
