import path from "node:path";
import type { ModelConfig } from "./config.js";
import { expectedTensors, sameShape } from "./expected-tensors.js";
import type { ProgressCallback } from "./load-progress.js";
import { hfInterleavesQk, qkHeads, qkRowsToRotateHalf } from "./qk-row-order.js";
import { SafetensorsCheckpoint } from "./safetensors-checkpoint.js";
import type { Tensor } from "./tensor.js";
import type { WeightStore } from "./types.js";

export interface HfWeightsOptions {
  readonly onProgress?: ProgressCallback;
  /** False: check the headers only and read no tensor data (`weights` comes back empty). */
  readonly data?: boolean;
}

/**
 * Reads the weights a config needs from a Hugging Face directory's safetensors. Every expected
 * tensor must be present with the expected shape (checked on the headers, before any data is
 * read); extra tensors (rotary inv_freq, a redundant lm_head under tied embeddings) are ignored.
 * Also returns the token embedding's stored type, known from the headers alone.
 */
export function loadHfWeights(
  dir: string,
  config: ModelConfig,
  opts: HfWeightsOptions = {},
): { weights: WeightStore; embedDtype: string } {
  const onProgress = opts.onProgress;
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    const expected = expectedTensors(config);
    const configFile = path.join(dir, "config.json");
    for (const t of expected) {
      const found = ckpt.describe(t.name);
      if (found === undefined) {
        throw new Error(
          `${dir}: missing tensor "${t.name}" (expected shape [${t.shape.join(", ")}] from ${configFile})`,
        );
      }
      if (!sameShape(found.entry.shape, t.shape)) {
        throw new Error(
          `${found.file}: tensor "${t.name}" has shape [${found.entry.shape.join(", ")}], ` +
            `but ${configFile} implies [${t.shape.join(", ")}]`,
        );
      }
    }
    const embedDtype = ckpt.describe("model.embed_tokens.weight")?.entry.dtype ?? "f32";
    const weights = new Map<string, Tensor>();
    if (opts.data === false) return { weights, embedDtype };
    const total = ckpt.byteSize(expected.map((t) => t.name));
    let done = 0;
    const interleaved = hfInterleavesQk(config.architecture);
    for (const t of expected) {
      let tensor = ckpt.read(t.name);
      const heads = interleaved ? qkHeads(config, t.name) : 0;
      if (heads > 0) tensor = qkRowsToRotateHalf(tensor, heads);
      weights.set(t.name, tensor);
      done += tensor.data.byteLength;
      onProgress?.({ phase: "weights", file: ckpt.describe(t.name)!.file, done, total });
    }
    return { weights, embedDtype };
  } finally {
    ckpt.close();
  }
}
