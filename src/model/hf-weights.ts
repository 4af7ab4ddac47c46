import path from "node:path";
import type { ModelConfig } from "./config.js";
import { expectedTensors, sameShape } from "./expected-tensors.js";
import { type Fp8Scheme, fp8ScaleName, fp8ToBf16 } from "./fp8-weights.js";
import {
  checkStackedExperts,
  isSplitExpertName,
  readStackedExperts,
  stackedSources,
} from "./gpt-oss-experts.js";
import { nestedWeightNames } from "./hf-multimodal.js";
import type { ProgressCallback } from "./load-progress.js";
import { hfInterleavesQk, qkHeads, qkRowsToRotateHalf, rotatedDims } from "./qk-row-order.js";
import { SafetensorsCheckpoint } from "./safetensors-checkpoint.js";
import { type Tensor, toFloat32 } from "./tensor.js";
import type { WeightStore } from "./types.js";

export interface HfWeightsOptions {
  readonly onProgress?: ProgressCallback;
  /** False: check the headers only and read no tensor data (`weights` comes back empty); a function: only the weights it names. */
  readonly data?: boolean | ((name: string) => boolean);
  /** config.json's FP8 quantization (fp8-weights.ts), read with the config; absent: none. */
  readonly fp8?: Fp8Scheme | null;
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
  const configFile = path.join(dir, "config.json");
  const fp8 = opts.fp8 ?? null;
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    // gpt-oss stacks each layer's experts: those tensors are checked and split per layer below.
    const stacked = config.architecture === "gpt_oss" ? config.numLayers : 0;
    const expected = expectedTensors(config).filter((t) => stacked === 0 || !isSplitExpertName(t.name));
    const forms = Array.from({ length: stacked }, (_, l) => checkStackedExperts(ckpt, config, l, dir));
    // Each weight under its own name, or where a multimodal checkpoint nests its text model's.
    const storedAs = new Map<string, string>();
    for (const t of expected)
      storedAs.set(t.name, [t.name, ...nestedWeightNames(t.name)].find((n) => ckpt.describe(n)) ?? t.name);
    const at = (name: string) => storedAs.get(name)!;
    for (const t of expected) {
      const found = ckpt.describe(at(t.name));
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
      if (found.entry.dtype === "f8_e4m3") {
        if (!fp8)
          throw new Error(
            `${found.file}: tensor "${t.name}" is FP8 (F8_E4M3), but ${configFile} has no fp8 quantization_config`,
          );
        if (!ckpt.describe(fp8ScaleName(at(t.name))))
          throw new Error(`${dir}: FP8 tensor "${at(t.name)}" has no scale "${fp8ScaleName(at(t.name))}"`);
      }
    }
    const embedDtype = ckpt.describe(at("model.embed_tokens.weight"))?.entry.dtype ?? "f32";
    const weights = new Map<string, Tensor>();
    if (opts.data === false) return { weights, embedDtype };
    const only = opts.data;
    if (typeof only === "function") {
      // Some weights only (gpt-oss's sinks, which are never stacked experts).
      for (const t of expected.filter((e) => only(e.name)))
        weights.set(t.name, { ...ckpt.read(at(t.name)), name: t.name });
      return { weights, embedDtype };
    }
    const sources = forms.flatMap((_, l) => stackedSources(ckpt, l));
    const total = ckpt.byteSize([...expected.map((t) => at(t.name)), ...sources]);
    let done = 0;
    const interleaved = hfInterleavesQk(config.architecture);
    for (const t of expected) {
      const name = at(t.name);
      const stored = ckpt.describe(name)!;
      let tensor: Tensor = {
        ...(fp8 && stored.entry.dtype === "f8_e4m3"
          ? widenFp8(ckpt, name, stored.entry.shape, fp8)
          : ckpt.read(name)),
        name: t.name,
      };
      const heads = interleaved ? qkHeads(config, t.name) : 0;
      if (heads > 0) tensor = qkRowsToRotateHalf(tensor, heads, rotatedDims(config));
      weights.set(t.name, tensor);
      done += stored.entry.end - stored.entry.begin; // the bytes read (an FP8 weight widens to twice them)
      onProgress?.({ phase: "weights", file: stored.file, done, total });
    }
    forms.forEach((form, l) => {
      for (const t of readStackedExperts(ckpt, config, l, form)) weights.set(t.name, t);
      done += ckpt.byteSize(stackedSources(ckpt, l));
      onProgress?.({ phase: "weights", file: dir, done, total });
    });
    return { weights, embedDtype };
  } finally {
    ckpt.close();
  }
}

/** An FP8 weight and its scale (f32 or bf16 as stored) widened to bf16. */
function widenFp8(
  ckpt: SafetensorsCheckpoint,
  name: string,
  shape: readonly number[],
  scheme: Fp8Scheme,
): Tensor {
  const scale = toFloat32(ckpt.read(fp8ScaleName(name)));
  return fp8ToBf16(name, ckpt.readBytes(name), shape, scale, scheme);
}
