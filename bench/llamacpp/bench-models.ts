import { existsSync, mkdirSync, renameSync } from "node:fs";
import path from "node:path";
import type { GgufQuantize } from "../../src/convert/gguf-format.js";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { parseHfConfig } from "../../src/model/hf-config.js";
import { loadModel } from "../../src/model/load.js";
import { randomWeights } from "../../src/model/random-weights.js";
import type { DType } from "../../src/model/tensor.js";
import type { LoadedModel } from "../../src/model/types.js";
import { loadHfTokenizer } from "../../src/tokenizer/hf-tokenizer.js";
import { BYTE_BOS, BYTE_EOS, writeByteTokenizer, writeJson } from "../common/byte-tokenizer.js";
import { TORCH_DTYPE, writeRandomModelDir } from "../common/random-model.js";

/** The model shapes the comparison runs, with random weights (shapes are what cost time). */
export const BENCH_SHAPES = {
  "smollm2-135m": {
    hidden_size: 576,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    intermediate_size: 1536,
    vocab_size: 49152,
    max_position_embeddings: 8192,
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
  // Qwen3-0.6B: q/k norms, head_dim 128 over a 1024-wide model, 16 query / 8 KV heads.
  "qwen3-0.6b": {
    architectures: ["Qwen3ForCausalLM"],
    model_type: "qwen3",
    hidden_size: 1024,
    num_hidden_layers: 28,
    num_attention_heads: 16,
    num_key_value_heads: 8,
    head_dim: 128,
    intermediate_size: 3072,
    rms_norm_eps: 1e-6,
    vocab_size: 151936,
    max_position_embeddings: 40960,
    rope_theta: 1000000.0,
    rope_scaling: null,
  },
  // Gemma-3-1B: GELU(tanh) FFN, head_dim 256, 4 query heads on 1 KV head, a 512-token window on five
  // layers of six, four norms a layer, a 262,144-token vocabulary (the LM head is 40% of the weights).
  "gemma3-1b": {
    architectures: ["Gemma3ForCausalLM"],
    model_type: "gemma3_text",
    hidden_act: "gelu_pytorch_tanh",
    hidden_activation: "gelu_pytorch_tanh",
    hidden_size: 1152,
    num_hidden_layers: 26,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 256,
    query_pre_attn_scalar: 256,
    intermediate_size: 6912,
    rms_norm_eps: 1e-6,
    vocab_size: 262144,
    max_position_embeddings: 32768,
    rope_theta: 1000000.0,
    rope_local_base_freq: 10000.0,
    rope_scaling: null,
    sliding_window: 512,
    sliding_window_pattern: 6,
  },
  // gpt-oss-20b's layers (64 heads of 64, 8 KV heads, 32 experts top-4 of width 2880, window 128 on
  // every other layer, sinks, biases), 4 of its 24, with a 32k vocabulary so the experts and
  // attention, not the LM head, take most of a token's bytes. Runs from GGUF only (--quantize).
  "gpt-oss-20b-4l": {
    architectures: ["GptOssForCausalLM"],
    model_type: "gpt_oss",
    hidden_size: 2880,
    num_hidden_layers: 4,
    num_attention_heads: 64,
    num_key_value_heads: 8,
    head_dim: 64,
    intermediate_size: 2880,
    num_local_experts: 32,
    num_experts_per_tok: 4,
    sliding_window: 128,
    attention_bias: true,
    swiglu_limit: 7.0,
    tie_word_embeddings: false,
    mlp_bias: undefined,
    vocab_size: 32768,
    max_position_embeddings: 131072,
    rope_theta: 150000.0,
    rope_scaling: {
      rope_type: "yarn",
      factor: 32.0,
      beta_fast: 32.0,
      beta_slow: 1.0,
      original_max_position_embeddings: 4096,
    },
  },
} as const;
export type BenchShape = keyof typeof BENCH_SHAPES;

/** A shape a flag names, checked against BENCH_SHAPES (the benches' `--shape` and `--shapes`). */
export function benchShape(value: string, flag: string): BenchShape {
  if (!(value in BENCH_SHAPES))
    throw new Error(`--${flag}: unknown shape "${value}" (${Object.keys(BENCH_SHAPES).join(", ")})`);
  return value as BenchShape;
}

/** Shapes whose Hugging Face form the random-weight writer does not produce (gpt-oss stacks its experts). */
const GGUF_ONLY: ReadonlySet<BenchShape> = new Set(["gpt-oss-20b-4l"]);

/** The shapes a run without --shapes compares: the two the issues' targets name. */
export const DEFAULT_SHAPES: readonly BenchShape[] = ["smollm2-135m", "llama3.2-1b"];

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
  if (GGUF_ONLY.has(shape)) return ensureGgufOnly(cacheRoot, shape, dtype, log, quantize);
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

/**
 * A shape whose checkpoint form is not written here: its random weights go straight from memory to
 * the GGUF file (a directory beside it holds the config and tokenizer the export reads).
 */
async function ensureGgufOnly(
  cacheRoot: string,
  shape: BenchShape,
  dtype: DType,
  log: (line: string) => void,
  quantize?: GgufQuantize,
): Promise<BenchModelFiles> {
  if (!quantize) throw new Error(`${shape} runs from GGUF only: pass --quantize (its releases: mxfp4_moe)`);
  const dir = path.join(cacheRoot, `${shape}-${dtype}-tokenizer`);
  const gguf = path.join(cacheRoot, `${shape}-${dtype}-${quantize}.gguf`);
  if (existsSync(gguf)) return { dir, gguf };
  mkdirSync(dir, { recursive: true });
  const json = hfConfig(shape, dtype);
  writeJson(path.join(dir, "config.json"), json);
  writeByteTokenizer(dir, true);
  log(`generating ${shape} (${dtype}, random weights) in memory and writing it as GGUF (${quantize}) ...`);
  const config = parseHfConfig(json, path.join(dir, "config.json"));
  const model: LoadedModel = {
    config,
    weights: randomWeights(config, { dtype, seed: 20251122, embedStd: 0.5, normSpread: 0.1 }),
    tokenizer: loadHfTokenizer(dir),
    generation: {},
    source: { kind: "hf", path: dir, label: shape },
  };
  modelToGguf(model, `${gguf}.partial`, { quantize });
  renameSync(`${gguf}.partial`, gguf);
  return { dir, gguf };
}

/** The cached Hugging Face directory alone (no GGUF export), generated on first use. */
export function ensureBenchModelDir(
  cacheRoot: string,
  shape: BenchShape,
  dtype: DType,
  log: (line: string) => void,
) {
  if (GGUF_ONLY.has(shape))
    throw new Error(`${shape} runs from GGUF only: pass --quantize (its releases: mxfp4_moe)`);
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
    rms_norm_eps: 1e-5,
    tie_word_embeddings: true,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    ...BENCH_SHAPES[shape],
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
