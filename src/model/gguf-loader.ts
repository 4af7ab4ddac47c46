import path from "node:path";
import type { Tokenizer } from "../tokenizer/types.js";
import type { ModelConfig } from "./config.js";
import { expectedTensors, sameShape } from "./expected-tensors.js";
import { ggufConfig } from "./gguf-config.js";
import { dequantize, isQuantName, quantTypeOf } from "./gguf-dequant.js";
import { architectureOf, Meta } from "./gguf-meta.js";
import {
  ggufExpertSlice,
  ggufTensorName,
  interleavesQk,
  isNormWeight,
  postAttentionNormNamed,
} from "./gguf-names.js";
import { GgufError, GgufFile, type GgufTensorInfo, readGgufHeader } from "./gguf-reader.js";
import { ggufTokenizer } from "./gguf-tokenizer.js";
import type { ProgressCallback } from "./load-progress.js";
import { qkHeads, qkRowsToRotateHalf, rotatedDims } from "./qk-row-order.js";
import { allocTensorData, type Tensor, toFloat32 } from "./tensor.js";
import type { GenerationDefaults, LoadedModel } from "./types.js";

/**
 * Loads a GGUF model file (llama.cpp's format) for the architectures the engine runs: "llama"
 * (Mistral and Mixtral are stored as llama), "qwen2", "qwen3", "qwen3moe", "phi3", "gemma", "gemma2",
 * "gemma3", "granite", "granitemoe", "smollm3", "olmo2", "olmoe", "ernie4_5", "ernie4_5-moe", "gpt-oss", "glm4",
 * "qwen2moe", "glm4moe", "seed_oss" and "exaone4".
 * Tensors are renamed to Hugging Face names, q/k rows of the architectures that store them in
 * interleaved pairs (gguf-names.ts, interleavesQk) are put back in rotate-half order, Gemma's norm
 * scales go back to Hugging Face's offsets from 1, and every matrix is kept as stored: F32/F16/BF16,
 * or Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/Q2_K/Q3_K/Q4_K/Q5_K/Q6_K/IQ4_NL/IQ4_XS/MXFP4 blocks that the quantized kernels
 * multiply without widening. A vector in a block format (llama.cpp writes none) is dequantized to f32.
 */

/** One tensor's data in an engine dtype: as stored, but for a vector in a block format (as f32). */
export function ggufTensorData(g: GgufFile, info: GgufTensorInfo, hfName: string): Tensor {
  return tensorFromBytes(g, info, g.readBytes(info.name), hfName);
}

/** A tensor of `info`'s type and shape over `bytes` (its data, or one expert's slice of a stack). */
function tensorFromBytes(
  g: GgufFile,
  info: Pick<GgufTensorInfo, "name" | "typeName" | "shape">,
  bytes: Uint8Array,
  hfName: string,
): Tensor {
  const count = info.shape.reduce((a, b) => a * b, 1);
  const view = (dtype: "f32" | "f16" | "bf16"): Tensor => ({
    name: hfName,
    dtype,
    shape: info.shape,
    // Over exactly these bytes: an expert's matrix is a view into its layer's stack.
    data:
      dtype === "f32"
        ? new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
        : new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2),
  });
  if (info.typeName === "F32") return view("f32");
  if (info.typeName === "F16") return view("f16");
  if (info.typeName === "BF16") return view("bf16");
  if (!isQuantName(info.typeName)) {
    throw new GgufError(
      g.file,
      `tensor "${info.name}" has type ${info.typeName}, which the GGUF import does not support ` +
        "(supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS, MXFP4)",
    );
  }
  if (info.shape.length < 2) {
    const values = dequantize(info.typeName, bytes, count);
    const data = allocTensorData("f32", values.length);
    data.set(values);
    return { name: hfName, dtype: "f32", shape: info.shape, data };
  }
  return { name: hfName, dtype: quantTypeOf(info.typeName), shape: info.shape, data: bytes };
}

/**
 * A Gemma norm's offsets from 1 (what Hugging Face stores and ModelConfig.normPlusOne reads) from
 * llama.cpp's scale. In f32 the engine's 1 + (s − 1) gives back s exactly for every s ≥ 0.5.
 */
function normOffsets(t: Tensor): Tensor {
  const scale = toFloat32(t);
  const data = allocTensorData("f32", scale.length);
  for (let i = 0; i < scale.length; i++) data[i] = scale[i]! - 1;
  return { name: t.name, dtype: "f32", shape: t.shape, data };
}

/** The same tensor over other bytes (of the same length). */
function loadWeights(
  g: GgufFile,
  config: ModelConfig,
  types: Set<string>,
  withData: boolean,
  /** The file's architecture is llama.cpp's llama (Mixtral's too): q/k rows in interleaved pairs. */
  interleavedQk: boolean,
  onProgress?: ProgressCallback,
): Map<string, Tensor> {
  const expected = expectedTensors(config);
  const experts = config.moe?.numExperts ?? 0;
  const infos = expected.map((t) => {
    // An expert's matrix is one slice of its layer's stack: [experts, rows, cols].
    const slice = ggufExpertSlice(t.name);
    const name = slice ? slice.name : ggufTensorName(t.name, postAttentionNormNamed(config));
    const info = g.header.tensors.get(name);
    if (info === undefined) {
      throw new GgufError(g.file, `missing tensor "${name}" (the model's ${t.name})`);
    }
    const want = slice ? [experts, ...t.shape] : t.shape;
    // A [1, n] weight (ERNIE 4.5's selection bias) is stored as the vector it is.
    const vectorOf = want.length === 2 && want[0] === 1 && sameShape(info.shape, [want[1]!]);
    if (!sameShape(info.shape, want) && !vectorOf) {
      throw new GgufError(
        g.file,
        `tensor "${info.name}" has shape [${info.shape.join(", ")}], but the metadata implies [${want.join(", ")}]`,
      );
    }
    // An expert's share of its stack's bytes, else the tensor's.
    const bytes = slice ? info.byteLength / experts : info.byteLength;
    return { info, expert: slice ? slice.expert : -1, bytes };
  });
  const total = infos.reduce((a, t) => a + t.bytes, 0);
  const weights = new Map<string, Tensor>();
  if (!withData) {
    for (const { info } of infos) types.add(info.typeName);
    return weights;
  }
  let done = 0;
  // The stacks of the layer whose experts are being sliced (each read once, not once per expert;
  // the expected order goes expert by expert through a layer's three stacks).
  const stacks = new Map<string, Uint8Array>();
  expected.forEach((t, i) => {
    const { info, expert, bytes: n } = infos[i]!;
    let tensor: Tensor;
    if (expert >= 0) {
      let bytes = stacks.get(info.name);
      if (!bytes) {
        bytes = g.readBytes(info.name);
        stacks.set(info.name, bytes);
      }
      // A view, not a copy: the stack is held once, and the backends' grouped products can use
      // it as it is (the experts lie one after another in it).
      const part = bytes.subarray(expert * n, (expert + 1) * n);
      tensor = tensorFromBytes(g, { name: info.name, typeName: info.typeName, shape: t.shape }, part, t.name);
    } else {
      stacks.clear();
      // In the model's shape (a [1, n] weight read from its vector).
      tensor = tensorFromBytes(
        g,
        { name: info.name, typeName: info.typeName, shape: t.shape },
        g.readBytes(info.name),
        t.name,
      );
    }
    const heads = interleavedQk ? qkHeads(config, t.name) : 0;
    if (heads > 0) tensor = qkRowsToRotateHalf(tensor, heads, rotatedDims(config));
    if (config.normPlusOne && isNormWeight(t.name)) tensor = normOffsets(tensor);
    weights.set(t.name, tensor);
    types.add(info.typeName);
    done += n;
    onProgress?.({ phase: "weights", file: g.file, done, total });
  });
  return weights;
}

/**
 * GGUF has no generation_config.json: the stop tokens are EOS plus llama.cpp's end-of-turn and
 * end-of-message tokens when the file names them (chat models end a turn with those).
 */
function generationDefaults(meta: Meta, config: ModelConfig): GenerationDefaults {
  const ids = [...config.eosTokenIds];
  for (const key of ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]) {
    const id = meta.num(key);
    if (id !== undefined && id >= 0 && id < config.vocabSize && !ids.includes(id)) ids.push(id);
  }
  // gpt-oss's harmony format ends a reply with <|return|> or a tool call with <|call|>: llama.cpp
  // ends generation at both, whatever eos_token_id names.
  const tokens = meta.get("tokenizer.ggml.tokens");
  if (config.architecture === "gpt_oss" && Array.isArray(tokens))
    for (const end of ["<|return|>", "<|call|>"]) {
      const id = tokens.indexOf(end);
      if (id >= 0 && !ids.includes(id)) ids.push(id);
    }
  return ids.length > 0 ? { eosTokenIds: ids } : {};
}

export interface GgufLoadOptions {
  readonly onProgress?: ProgressCallback;
  /** False: the tensor directory is checked against the metadata, no tensor data is read (`weights` is empty). */
  readonly weights?: boolean;
}

/** Loads a .gguf model file: config and tokenizer from the metadata, weights from the tensors. */
export function loadGgufModel(file: string, opts: GgufLoadOptions = {}): LoadedModel {
  const g = GgufFile.open(file);
  try {
    const meta = new Meta(file, g.header.metadata);
    const arch = architectureOf(meta);
    const config = ggufConfig(meta, arch, g);
    const tokenizer = ggufTokenizer(file, meta.get);
    const types = new Set<string>();
    const weights = loadWeights(
      g,
      config,
      types,
      opts.weights !== false,
      interleavesQk(arch),
      opts.onProgress,
    );
    const label = `${path.basename(file)} (GGUF ${arch}, ${[...types].sort().join(" + ")})`;
    return {
      config,
      weights,
      embedDtype:
        g.header.tensors.get(ggufTensorName("model.embed_tokens.weight"))?.typeName.toLowerCase() ?? "f32",
      tokenizer,
      generation: generationDefaults(meta, config),
      source: { kind: "gguf", path: file, label },
    };
  } finally {
    g.close();
  }
}

/** Only the tokenizer of a .gguf file (for threads that hold no model): reads the header alone. */
export function loadGgufTokenizer(file: string): Tokenizer {
  const header = readGgufHeader(file);
  return ggufTokenizer(file, (key) => header.metadata.get(key));
}
