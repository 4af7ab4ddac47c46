import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { DType } from "../../src/model/tensor.js";
import { BYTE_BOS, BYTE_EOS } from "../common/byte-tokenizer.js";
import { TORCH_DTYPE, writeRandomModelDir } from "../common/random-model.js";

/**
 * Random-weight Llama shapes for calibration: what costs time is the shape, not the values. The
 * "bench" shape is large enough that kernel time dominates the engine's JS work; "quick" keeps a
 * test fast.
 */
const BASE_SHAPES = {
  bench: {
    hidden_size: 768,
    num_hidden_layers: 8,
    num_attention_heads: 12,
    num_key_value_heads: 6,
    intermediate_size: 2048,
    max_position_embeddings: 2048,
  },
  quick: {
    hidden_size: 256,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    intermediate_size: 768,
    max_position_embeddings: 512,
  },
} as const;
type BaseShape = keyof typeof BASE_SHAPES;

/**
 * A named shape; "<base>-skeleton" has the base's layer count and context but tiny widths, so a
 * step costs only the engine's per-layer and per-token work (kernels take next to nothing).
 */
export type CalibrationShape = BaseShape | `${BaseShape}-skeleton`;

function shapeOf(name: CalibrationShape): Record<string, number> {
  const base = name.replace(/-skeleton$/, "") as BaseShape;
  const s = BASE_SHAPES[base];
  if (s === undefined) throw new Error(`unknown calibration shape "${name}"`);
  if (base === name) return { ...s };
  return { ...s, hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 128 };
}

/** Byte-level vocabulary: ids 0..255 are bytes, then <s> and </s>. */
export const CALIB_BOS = BYTE_BOS;
export const CALIB_EOS = BYTE_EOS;
const VOCAB = 258;

/** The HF config.json object of a shape (also what the simulator reads for its SimModel). */
export function calibrationConfig(shape: CalibrationShape, dtype: DType): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    _name_or_path: `calibration-${shape}-${dtype}`,
    ...shapeOf(shape),
    vocab_size: VOCAB,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    rope_scaling: null,
    tie_word_embeddings: false,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: CALIB_BOS,
    eos_token_id: CALIB_EOS,
    torch_dtype: TORCH_DTYPE[dtype],
  };
}

/**
 * The Hugging Face directory of a shape under `cacheRoot`, written on first use (seeded, so every
 * run sees the same weights). A half-written directory is never reused.
 */
export function ensureCalibrationModel(cacheRoot: string, shape: CalibrationShape, dtype: DType): string {
  const dir = path.join(cacheRoot, `calibration-${shape}-${dtype}`);
  const configJson = calibrationConfig(shape, dtype);
  // Reuse only a directory written for exactly this shape (the shapes may change between versions).
  if (existsSync(path.join(dir, "config.json"))) {
    const written = readFileSync(path.join(dir, "config.json"), "utf8");
    if (written === `${JSON.stringify(configJson)}\n`) return dir;
  }
  writeRandomModelDir(dir, configJson, dtype, 6061);
  return dir;
}

/** Deterministic prompt ids: BOS then bytes (the engine is fed ids; the text does not matter). */
export function calibrationPrompt(length: number, salt: number): number[] {
  const ids = [CALIB_BOS];
  for (let i = 1; i < length; i++) ids.push((i * 7919 + salt * 104729) % 256);
  return ids;
}
