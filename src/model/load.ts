import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { loadBuiltinModel } from "./builtin-model.js";
import { loadGgufModel } from "./gguf-loader.js";
import { loadHfModel } from "./hf-loader.js";
import { downloadHubModel, isHubId, parseHubGguf } from "./hub.js";
import { loadLlama2cModel } from "./llama2c-loader.js";
import type { ProgressCallback } from "./load-progress.js";
import { loadRandomDemoModel } from "./random-demo-model.js";
import type { LoadedModel } from "./types.js";

/** How the error messages name the two built-in models. */
const BUILTIN_FORMS = "demo (the built-in stories260K), or random (random weights, gibberish)";

export interface LoadModelOptions {
  /** A tokenizer to use instead of the one found with the model (llama2.c .bin, or an HF tokenizer directory). */
  readonly tokenizerPath?: string;
  readonly onProgress?: ProgressCallback;
  /** Hub revision (branch, tag or commit) for ORG/NAME specs. */
  readonly revision?: string;
  /**
   * False: read the config, tokenizer and generation settings and check the weight files' headers
   * against the config, but read no tensor data (`weights` is empty). A front end whose model
   * workers hold the weights needs nothing more. "attention": only the weights the attention side
   * is configured with (gpt-oss's sinks), for such a front end. Default true.
   */
  readonly weights?: boolean | "attention";
}

/**
 * The one entry point for `--model`: undefined or "demo" → the built-in stories260K (a small
 * trained TinyStories model shipped in the package); "random" → the random-weight demo model;
 * an existing directory → Hugging Face safetensors; an existing .bin file → llama2.c checkpoint;
 * an existing .gguf file → llama.cpp's GGUF (llama, mistral-as-llama, qwen2);
 * ORG/NAME that is not a local path → downloaded from the Hugging Face Hub into the cache;
 * ORG/NAME/FILE.gguf → that GGUF file of a Hub repository, downloaded the same way.
 */
export async function loadModel(spec?: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  const withWeights = allWeights(opts);
  if (spec === undefined || spec === "demo") return loadBuiltinModel({ weights: withWeights });
  if (spec === "random") return loadRandomDemoModel({ weights: withWeights });
  if (existsSync(spec)) {
    const st = statSync(spec);
    if (st.isDirectory()) return loadHfModel(spec, hfOptions(opts));
    if (spec.endsWith(".gguf")) {
      if (opts.tokenizerPath)
        throw new Error(`--model ${spec}: a GGUF file carries its own tokenizer; drop --tokenizer`);
      return loadGgufModel(spec, ggufOptions(opts));
    }
    if (spec.endsWith(".bin")) {
      return loadLlama2cModel(spec, {
        ...(opts.tokenizerPath ? { tokenizerPath: opts.tokenizerPath } : {}),
        weights: withWeights,
      });
    }
    throw new Error(
      `--model ${spec}: a file that is not a llama2.c .bin checkpoint or a .gguf file; ` +
        `pass a Hugging Face model directory, a .bin checkpoint, a .gguf file, ORG/NAME from the Hub, ${BUILTIN_FORMS}`,
    );
  }
  const hubGguf = parseHubGguf(spec);
  if (hubGguf) {
    if (opts.tokenizerPath)
      throw new Error(`--model ${spec}: a GGUF file carries its own tokenizer; drop --tokenizer`);
    const dir = await downloadHubModel(hubGguf.repoId, {
      ggufFile: hubGguf.file,
      ...(opts.revision ? { revision: opts.revision } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    return loadGgufModel(path.join(dir, hubGguf.file), ggufOptions(opts));
  }
  if (isHubId(spec)) {
    const dir = await downloadHubModel(spec, {
      ...(opts.revision ? { revision: opts.revision } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    return loadHfModel(dir, { ...hfOptions(opts), label: spec });
  }
  throw new Error(
    `--model ${spec}: no such file or directory, and not a Hugging Face Hub id (ORG/NAME); ` +
      `pass a model directory, a llama2.c .bin checkpoint, a .gguf file, ORG/NAME, ORG/NAME/FILE.gguf, ${BUILTIN_FORMS}`,
  );
}

/**
 * Whether to read every weight, for formats without attention-side weights: only Hugging Face
 * directories hold such a model (gpt-oss), so elsewhere "attention" reads none, as false does.
 */
function allWeights(opts: LoadModelOptions): boolean {
  return opts.weights === true || opts.weights === undefined;
}

function ggufOptions(opts: LoadModelOptions) {
  return { ...(opts.onProgress ? { onProgress: opts.onProgress } : {}), weights: allWeights(opts) };
}

function hfOptions(opts: LoadModelOptions) {
  return {
    weights: opts.weights ?? true,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.tokenizerPath ? { tokenizerDir: opts.tokenizerPath } : {}),
  };
}
