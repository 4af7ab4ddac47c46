// A GGUF file's metadata as the engine's model config: each architecture's shape, mixture, RoPE
// scaling and family features as llama.cpp reads them.
import { type Architecture, type ModelConfig, OLMO2_NORMS, ropeLayersEvery, ropeLayersOf } from "./config.js";
import { GEMMA_FAMILY, gemmaGgufFeatures } from "./gguf-gemma.js";
import { FAMILY_OF, isGemma, type Meta, type SupportedArch } from "./gguf-meta.js";
import { mixtureOf } from "./gguf-mixtures.js";
import { SMOLLM3_NO_ROPE_STEP } from "./gguf-names.js";
import { GgufError, type GgufFile } from "./gguf-reader.js";
import { ropeScaling } from "./gguf-rope.js";

/**
 * EXAONE 4 as llama.cpp's exaone4 runs it: norms on the blocks' outputs only, per-head q/k norms,
 * and only in a 64-layer file (the 32B's shape, which llama.cpp recognises by its layer count)
 * window layers, three of every four (attention.sliding_window, else 4096), the fourth global
 * without RoPE.
 */
function exaone4GgufFeatures(
  meta: Meta,
  numLayers: number,
): Pick<ModelConfig, "qkNorm" | "postNormsOnly" | "slidingWindow" | "slidingLayers" | "ropeLayers"> {
  const base = { qkNorm: true, postNormsOnly: true } as const;
  if (numLayers !== 64) return { ...base, slidingWindow: null };
  const sliding = Array.from({ length: numLayers }, (_, l) => l % 4 < 3);
  return {
    ...base,
    slidingWindow: meta.num("exaone4.attention.sliding_window") ?? 4096,
    slidingLayers: sliding,
    ...ropeLayersOf(sliding),
  };
}

/**
 * gpt-oss's attention as llama.cpp's gpt-oss runs it: sinks, q/k/v/o biases, and a window
 * (attention.sliding_window, required) on the layers its pattern makes window ones (every other,
 * from layer 0, unless attention.sliding_window_pattern says otherwise).
 */
function gptOssAttention(
  meta: Meta,
  numLayers: number,
): Pick<ModelConfig, "attnSinks" | "attentionBias" | "outputBias" | "slidingWindow" | "slidingLayers"> {
  const layers = windowLayersOf(meta.get("gpt-oss.attention.sliding_window_pattern") ?? 2, numLayers);
  if (typeof layers === "string")
    throw new GgufError(meta.file, `gpt-oss.attention.sliding_window_pattern ${layers}`);
  return {
    attnSinks: true,
    attentionBias: true,
    outputBias: true,
    slidingWindow: meta.need("gpt-oss.attention.sliding_window"),
    slidingLayers: layers,
  };
}

/** The engine's model config of a file of architecture `arch`, or a clear error naming the key. */
export function ggufConfig(meta: Meta, arch: SupportedArch, g: GgufFile): ModelConfig {
  const k = (name: string) => `${arch}.${name}`;
  // GLM-4.5's files keep their multi-token-prediction layers after the decoder's: not run.
  const numLayers = meta.need(k("block_count")) - (meta.num(k("nextn_predict_layers")) ?? 0);
  const ffn = meta.need(k("feed_forward_length"));
  const moe = mixtureOf(meta, arch, numLayers, ffn, g);
  const hidden = meta.need(k("embedding_length"));
  const numHeads = meta.need(k("attention.head_count"));
  const numKvHeads = meta.num(k("attention.head_count_kv")) ?? numHeads;
  if (numHeads % numKvHeads !== 0) {
    throw new GgufError(meta.file, `head_count ${numHeads} is not a multiple of head_count_kv ${numKvHeads}`);
  }
  const headDim = meta.num(k("attention.key_length")) ?? hidden / numHeads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new GgufError(meta.file, `head dimension ${headDim} is not an even integer`);
  }
  // Partial rotary embeddings (Phi-4-mini's) rotate fewer dimensions than a head has: phi3's only,
  // the one family whose attention applies them.
  const rotated = meta.num(k("rope.dimension_count")) ?? headDim;
  if (
    rotated !== headDim &&
    ((arch !== "phi3" && arch !== "glm4" && arch !== "glm4moe") || rotated > headDim || rotated % 2 !== 0)
  ) {
    throw new GgufError(
      meta.file,
      `${k("rope.dimension_count")} ${rotated} ≠ head dimension ${headDim}: partial rotary embeddings are supported for phi3, glm4 and glm4moe only (an even count below the head dimension)`,
    );
  }
  const embd = g.header.tensors.get("token_embd.weight");
  if (embd === undefined) throw new GgufError(meta.file, 'missing tensor "token_embd.weight"');
  const tokens = meta.get("tokenizer.ggml.tokens");
  const vocabSize = meta.num(k("vocab_size")) ?? (Array.isArray(tokens) ? tokens.length : embd.shape[0]!);
  const bos = meta.num("tokenizer.ggml.bos_token_id");
  const eos = meta.num("tokenizer.ggml.eos_token_id");
  const ropeTheta = meta.num(k("rope.freq_base")) ?? 10000;
  const rope = ropeScaling(meta, arch, g, rotated);
  const shape = { numLayers, hiddenSize: hidden, numHeads, headDim, ropeTheta, ropeScaling: rope };
  const gemma = isGemma(arch) ? gemmaGgufFeatures(meta, arch, shape) : undefined;
  // Phi-3's window as its converter writes it (0: none). llama.cpp turns it off; the engine
  // attends within it, as the model was trained.
  const window = arch === "phi3" ? (meta.num(k("attention.sliding_window")) ?? 0) : 0;
  const family: Architecture = isGemma(arch)
    ? GEMMA_FAMILY[arch]
    : arch === "llama" && moe
      ? "mixtral"
      : FAMILY_OF[arch];
  return {
    architecture: family,
    vocabSize,
    hiddenSize: hidden,
    intermediateSize: ffn,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    maxPositionEmbeddings: meta.need(k("context_length")),
    rmsNormEps: meta.num(k("attention.layer_norm_rms_epsilon")) ?? 1e-6,
    ropeTheta,
    ropeScaling: rope,
    ...(rotated !== headDim ? { rotaryDim: rotated } : {}),
    tieWordEmbeddings: !g.header.tensors.has("output.weight"),
    // llama.cpp's glm4 takes q/k/v biases where the file has them (GLM-4-0414's have).
    attentionBias:
      arch === "qwen2" ||
      ((arch === "glm4" || arch === "qwen2moe" || arch === "glm4moe" || arch === "seed_oss") &&
        g.header.tensors.has("blk.0.attn_q.bias")),
    ...(arch === "glm4" ? { fusedGateUp: true, postNorms: true } : {}),
    ...(arch === "qwen3" || arch === "qwen3moe" ? { qkNorm: true } : {}),
    // GLM-4.5's q/k norms are optional (use_qk_norm): there where the file has them.
    ...(arch === "glm4moe" && g.header.tensors.has("blk.0.attn_q_norm.weight") ? { qkNorm: true } : {}),
    ...(arch === "olmoe" ? { qkNorm: true, qkNormFull: true } : {}),
    ...(moe ? { moe } : {}),
    ...(arch === "phi3" ? { fusedProjections: true } : {}),
    slidingWindow: window > 0 ? window : null,
    ...gemma,
    ...(arch === "granite" || arch === "granitemoe" ? graniteGgufFeatures(meta, arch) : {}),
    ...(arch === "smollm3" ? ropeLayersEvery(numLayers, SMOLLM3_NO_ROPE_STEP) : {}),
    ...(arch === "olmo2" ? olmo2GgufFeatures(meta, numLayers, ropeTheta) : {}),
    ...(arch === "gpt-oss" ? gptOssAttention(meta, numLayers) : {}),
    ...(arch === "exaone4" ? exaone4GgufFeatures(meta, numLayers) : {}),
    bosTokenId: bos ?? null,
    eosTokenIds: eos === undefined ? [] : [eos],
  };
}

/**
 * The window layers a sliding_window_pattern states: a bool a layer (true: window), or n (every n-th
 * layer full, the others window, as llama.cpp's set_swa_pattern), absent 4 (llama.cpp's olmo2);
 * or what is wrong with it.
 */
export function windowLayersOf(pattern: unknown, numLayers: number): boolean[] | string {
  if (Array.isArray(pattern)) {
    if (pattern.length !== numLayers) return `has ${pattern.length} entries for ${numLayers} layers`;
    return pattern.map((v) => v === true);
  }
  const every = pattern === undefined ? 4 : pattern;
  if (typeof every !== "number" || !Number.isInteger(every) || every < 1)
    return `= ${String(pattern)} is not a layer count`;
  return Array.from({ length: numLayers }, (_, l) => l % every < every - 1);
}

/**
 * OLMo 2 as llama.cpp's olmo2 runs it: norms after each block only, q and k normed over their whole
 * projections (rotate-half RoPE, so q/k rows as Hugging Face stores them); with a window, OLMo 3
 * (windowLayersOf, above).
 */
function olmo2GgufFeatures(
  meta: Meta,
  numLayers: number,
  ropeTheta: number,
): Partial<ModelConfig> & typeof OLMO2_NORMS {
  const window = meta.num("olmo2.attention.sliding_window") ?? 0;
  if (window <= 0) return OLMO2_NORMS;
  // OLMo 3: window layers as the pattern key states them (a bool a layer, true: window; or n: each
  // n-th layer full), else llama.cpp's fixed pattern, every fourth layer full; their RoPE unscaled.
  const slidingLayers = windowLayersOf(meta.get("olmo2.attention.sliding_window_pattern"), numLayers);
  if (typeof slidingLayers === "string")
    throw new GgufError(meta.file, `olmo2.attention.sliding_window_pattern ${slidingLayers}`);
  return {
    ...OLMO2_NORMS,
    architecture: "olmo3",
    slidingWindow: window,
    slidingLayers,
    localRopeTheta: meta.num("olmo2.rope.freq_base_swa") ?? ropeTheta,
  };
}

/**
 * Granite's multipliers as llama.cpp's granite reads them: embeddings times embedding_scale and
 * each block's output times residual_scale (absent or 0: none), logits divided by logit_scale (a
 * key the architecture requires), scores scaled by attention.scale (absent or 0: 1/√head_dim).
 * A file that turns RoPE off (rope.scaling.finetuned false) is refused.
 */
function graniteGgufFeatures(
  meta: Meta,
  arch: "granite" | "granitemoe",
): Pick<ModelConfig, "embedMultiplier" | "residualMultiplier" | "logitsDivisor" | "attentionScale"> {
  const scale = (key: string): number | undefined => {
    const v = meta.num(`${arch}.${key}`);
    if (v !== undefined && v < 0)
      throw new GgufError(meta.file, `metadata "${arch}.${key}" = ${v} is negative`);
    return v === 0 || v === 1 ? undefined : v;
  };
  const logit = meta.num(`${arch}.logit_scale`);
  if (logit === undefined) throw new GgufError(meta.file, `missing metadata "${arch}.logit_scale"`);
  if (!(logit > 0))
    throw new GgufError(meta.file, `metadata "${arch}.logit_scale" = ${logit} is not positive`);
  if (meta.get(`${arch}.rope.scaling.finetuned`) === false)
    throw new GgufError(
      meta.file,
      `${arch} without RoPE (${arch}.rope.scaling.finetuned false) is not supported`,
    );
  if ((meta.num(`${arch}.expert_shared_feed_forward_length`) ?? 0) > 0)
    throw new GgufError(meta.file, `${arch} with a shared expert is not supported`);
  const embed = scale("embedding_scale");
  const residual = scale("residual_scale");
  const attention = meta.num(`${arch}.attention.scale`);
  if (attention !== undefined && attention < 0)
    throw new GgufError(meta.file, `metadata "${arch}.attention.scale" = ${attention} is negative`);
  return {
    ...(embed !== undefined ? { embedMultiplier: embed } : {}),
    ...(residual !== undefined ? { residualMultiplier: residual } : {}),
    ...(logit !== 1 ? { logitsDivisor: logit } : {}),
    ...(attention !== undefined && attention > 0 ? { attentionScale: attention } : {}),
  };
}
