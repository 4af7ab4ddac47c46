import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { loadHfTokenizer } from "../tokenizer/index.js";
import { fp8Scheme } from "./fp8-weights.js";
import { loadGenerationConfig } from "./generation-config.js";
import { parseHfConfig } from "./hf-config.js";
import { loadHfWeights } from "./hf-weights.js";
import { readJsonFile } from "./json-file.js";
import type { ProgressCallback } from "./load-progress.js";
import type { LoadedModel } from "./types.js";
import { isAttentionSideWeight } from "./weight-names.js";

export interface HfLoadOptions {
  readonly onProgress?: ProgressCallback;
  /** Shown as the model's label instead of the directory name (e.g. the Hub id it came from). */
  readonly label?: string;
  /** Read the tokenizer from this directory instead of the model's own. */
  readonly tokenizerDir?: string;
  /**
   * False: the tensors' headers are checked against the config, no tensor data is read (`weights`
   * is empty); "attention": only the attention side's weights are read (isAttentionSideWeight).
   */
  readonly weights?: boolean | "attention";
}

/**
 * Loads a Hugging Face model directory: config.json, generation_config.json (optional),
 * *.safetensors (single or sharded) and the tokenizer files. Config and tensor headers are
 * validated before any weight byte is read.
 */
export async function loadHfModel(dir: string, opts: HfLoadOptions = {}): Promise<LoadedModel> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${dir}: not a model directory`);
  const configFile = path.join(dir, "config.json");
  if (!existsSync(configFile)) throw new Error(`${dir}: no config.json (not a Hugging Face model directory)`);
  const json = readJsonFile(configFile);
  const config = parseHfConfig(json, configFile);
  const generation = loadGenerationConfig(path.join(dir, "generation_config.json"));
  const tokenizer = await loadHfTokenizer(opts.tokenizerDir ?? dir);
  const { weights, embedDtype } = loadHfWeights(dir, config, {
    data: opts.weights === "attention" ? isAttentionSideWeight : opts.weights !== false,
    fp8: fp8Scheme(json, configFile),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  return {
    config,
    weights,
    embedDtype,
    tokenizer,
    generation,
    source: { kind: "hf", path: dir, label: opts.label ?? path.basename(path.resolve(dir)) },
  };
}
