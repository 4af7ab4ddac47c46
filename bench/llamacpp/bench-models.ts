import { existsSync, renameSync } from "node:fs";
import path from "node:path";
import type { GgufQuantize } from "../../src/convert/gguf-format.js";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { loadModel } from "../../src/model/load.js";
import type { DType } from "../../src/model/tensor.js";
import { BYTE_BOS, BYTE_EOS } from "../common/byte-tokenizer.js";
import { TORCH_DTYPE, writeRandomModelDir } from "../common/random-model.js";

/** The two model shapes the comparison runs, with random weights (shapes are what cost time). */
export const BENCH_SHAPES = {
  "smollm2-135m": {
    hidden_size: 576,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    intermediate_size: 1536,
    vocab_size: 49152,
    max_position_embeddings: 2048,
    rope_theta: 100000.0,
    rope_scaling: null,
  },
  "llama3.2-1b": {
    hidden_size: 2048,
    num_hidden_layers: 16,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    intermediate_size: 8192,
    vocab_size: 128256,
    max_position_embeddings: 131072,
    rope_theta: 500000.0,
    rope_scaling: {
      rope_type: "llama3",
      factor: 32.0,
      low_freq_factor: 1.0,
      high_freq_factor: 4.0,
      original_max_position_embeddings: 8192,
    },
  },
} as const;
export type BenchShape = keyof typeof BENCH_SHAPES;

export interface BenchModelFiles {
  readonly dir: string;
  readonly gguf: string;
}

/**
 * The cached Hugging Face directory (random weights, byte-level tokenizer) and its GGUF export for
 * one shape and precision, generated on first use. Generating the 1B model takes a minute or two,
 * so both are kept under `cacheRoot` and reused; a half-written directory is never reused.
 */
export async function ensureBenchModel(
  cacheRoot: string,
  shape: BenchShape,
  dtype: DType,
  log: (line: string) => void,
  quantize?: GgufQuantize,
): Promise<BenchModelFiles> {
  const dir = ensureBenchModelDir(cacheRoot, shape, dtype, log);
  const gguf = path.join(cacheRoot, `${shape}-${dtype}${quantize ? `-${quantize}` : ""}.gguf`);
  if (!existsSync(gguf)) {
    log(`converting ${shape} to GGUF${quantize ? ` (${quantize})` : ""} ...`);
    const model = await loadModel(dir);
    modelToGguf(model, `${gguf}.partial`, quantize ? { quantize } : {});
    renameSync(`${gguf}.partial`, gguf);
  }
  return { dir, gguf };
}

/** The cached Hugging Face directory alone (no GGUF export), generated on first use. */
export function ensureBenchModelDir(
  cacheRoot: string,
  shape: BenchShape,
  dtype: DType,
  log: (line: string) => void,
) {
  const dir = path.join(cacheRoot, `${shape}-${dtype}`);
  if (!existsSync(path.join(dir, "config.json"))) {
    log(`generating ${shape} (${dtype}, random weights) in ${dir} ...`);
    writeRandomModelDir(dir, hfConfig(shape, dtype), dtype, 20251122, true);
  }
  return dir;
}

function hfConfig(shape: BenchShape, dtype: DType): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    ...BENCH_SHAPES[shape],
    rms_norm_eps: 1e-5,
    tie_word_embeddings: true,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: BYTE_BOS,
    eos_token_id: BYTE_EOS,
    torch_dtype: TORCH_DTYPE[dtype],
  };
}

/** Deterministic prompt ids (BOS, then bytes) so both engines see the same input. */
export function benchPrompt(length: number, salt: number): number[] {
  const ids = [BYTE_BOS];
  for (let i = 1; i < length; i++) ids.push((i * 7919 + salt * 104729) % 256);
  return ids;
}
