import type { Tokenizer } from "../tokenizer/types.js";
import type { ModelConfig } from "./config.js";
import type { Tensor } from "./tensor.js";

/**
 * Weights keyed by their Hugging Face names ("model.layers.3.self_attn.q_proj.weight").
 * Every loader (HF safetensors, llama2.c, random weights) produces this naming, so the graph description
 * is the only place that knows which tensor feeds which operator. Projection weights are in the
 * Hugging Face layout: q/k rows ordered for rotate-half RoPE.
 */
export type WeightStore = ReadonlyMap<string, Tensor>;

/** Defaults from generation_config.json (all optional there). */
export interface GenerationDefaults {
  readonly eosTokenIds?: readonly number[];
  readonly temperature?: number;
  readonly topP?: number;
  readonly topK?: number;
  readonly repetitionPenalty?: number;
  readonly maxNewTokens?: number;
}

export interface ModelSource {
  readonly kind: "hf" | "llama2c" | "gguf" | "demo";
  /** Where it came from: a directory, a .bin or .gguf file, or "random" (kind "demo": the random-weight model). */
  readonly path: string;
  /** Human-readable name shown in logs, /v1/models and the CLI. The random-weight model says so. */
  readonly label: string;
  /** The tokenizer file used (llama2.c checkpoints keep it beside the .bin), when it is a separate file. */
  readonly tokenizerPath?: string;
}

export interface LoadedModel {
  readonly config: ModelConfig;
  /** Empty when the model was loaded without its weights (`LoadModelOptions.weights: false`). */
  readonly weights: WeightStore;
  /**
   * The token embedding's type as stored ("f32", "bf16", "q8_0", …). Loaders set it from the file's
   * headers, so a model loaded without its weights still knows it (the default KV dtype follows it).
   */
  readonly embedDtype?: string;
  readonly tokenizer: Tokenizer;
  readonly generation: GenerationDefaults;
  readonly source: ModelSource;
}
