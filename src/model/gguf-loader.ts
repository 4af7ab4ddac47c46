import path from "node:path";
import type { Tokenizer } from "../tokenizer/types.js";
import {
  type Architecture,
  type ModelConfig,
  type MoeConfig,
  OLMO2_NORMS,
  type RopeScaling,
  ropeLayersEvery,
  ropeLayersOf,
  yarnMscale,
} from "./config.js";
import { expectedTensors, sameShape } from "./expected-tensors.js";
import { dequantize, isQuantName, quantTypeOf } from "./gguf-dequant.js";
import { GEMMA_FAMILY, type GemmaGgufArch, gemmaGgufFeatures } from "./gguf-gemma.js";
import {
  ggufExpertSlice,
  ggufTensorName,
  interleavesQk,
  isNormWeight,
  postAttentionNormNamed,
  SMOLLM3_NO_ROPE_STEP,
} from "./gguf-names.js";
import {
  GgufError,
  GgufFile,
  type GgufMetaValue,
  type GgufTensorInfo,
  readGgufHeader,
  shortestF32,
} from "./gguf-reader.js";
import { llama3FromRopeFreqs } from "./gguf-rope.js";
import { ggufTokenizer } from "./gguf-tokenizer.js";
import type { ProgressCallback } from "./load-progress.js";
import { qkHeads, qkRowsToRotateHalf, rotatedDims } from "./qk-row-order.js";
import { allocTensorData, type Tensor, tensorDataOver, toFloat32 } from "./tensor.js";
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

const SUPPORTED_ARCHS = [
  "llama",
  "qwen2",
  "qwen3",
  "qwen3moe",
  "phi3",
  "gemma",
  "gemma2",
  "gemma3",
  "granite",
  "granitemoe",
  "smollm3",
  "olmo2",
  "olmoe",
  "ernie4_5",
  "ernie4_5-moe",
  "gpt-oss",
  "glm4",
  "qwen2moe",
  "glm4moe",
  "seed_oss",
  "exaone4",
] as const;
type SupportedArch = (typeof SUPPORTED_ARCHS)[number];

/** The engine's family of each llama.cpp architecture but Gemma's (gguf-gemma.ts); llama with experts is Mixtral. */
const FAMILY_OF: Readonly<Record<Exclude<SupportedArch, GemmaGgufArch>, Architecture>> = {
  llama: "llama",
  qwen2: "qwen2",
  qwen3: "qwen3",
  qwen3moe: "qwen3_moe",
  phi3: "phi3",
  granite: "granite",
  granitemoe: "granite",
  smollm3: "smollm3",
  olmo2: "olmo2",
  olmoe: "olmoe",
  ernie4_5: "ernie4_5",
  "ernie4_5-moe": "ernie4_5_moe",
  "gpt-oss": "gpt_oss",
  glm4: "glm4",
  qwen2moe: "qwen2_moe",
  glm4moe: "glm4_moe",
  seed_oss: "seed_oss",
  exaone4: "exaone4",
};

/** llama.cpp architectures of families the engine does not run, with what to say about them. */
const REFUSED_ARCHS: Readonly<Record<string, string>> = {
  gemma3n: "Gemma 3n (per-layer embeddings, AltUp) is not a family the engine runs",
  gemma4: "Gemma 4 is not a family the engine runs",
  "gemma-embedding": "EmbeddingGemma is an encoder (bidirectional attention), not a decoder the engine runs",
};

class Meta {
  constructor(
    readonly file: string,
    private readonly map: ReadonlyMap<string, GgufMetaValue>,
  ) {}
  get = (key: string): GgufMetaValue | undefined => this.map.get(key);
  num(key: string): number | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    const n = typeof v === "bigint" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isFinite(n)) {
      throw new GgufError(this.file, `metadata "${key}" is not a number (${JSON.stringify(String(v))})`);
    }
    return n;
  }
  need(key: string): number {
    const n = this.num(key);
    if (n === undefined) throw new GgufError(this.file, `missing metadata "${key}"`);
    if (!Number.isInteger(n) || n <= 0)
      throw new GgufError(this.file, `metadata "${key}" = ${n} is not a positive integer`);
    return n;
  }
}

function architectureOf(meta: Meta): SupportedArch {
  const arch = meta.get("general.architecture");
  if (typeof arch !== "string") throw new GgufError(meta.file, 'missing metadata "general.architecture"');
  if (!(SUPPORTED_ARCHS as readonly string[]).includes(arch)) {
    const why = REFUSED_ARCHS[arch];
    throw new GgufError(
      meta.file,
      `unsupported architecture "${arch}"${why ? `: ${why}` : ""} (supported: ${SUPPORTED_ARCHS.join(", ")}; Mistral is stored as llama)`,
    );
  }
  return arch as SupportedArch;
}

function isGemma(arch: SupportedArch): arch is GemmaGgufArch {
  return arch === "gemma" || arch === "gemma2" || arch === "gemma3";
}

function ropeScaling(meta: Meta, arch: string, g: GgufFile, headDim: number): RopeScaling | null {
  if (g.header.tensors.has("rope_factors_long.weight") || g.header.tensors.has("rope_factors_short.weight")) {
    if (arch !== "phi3")
      throw new GgufError(
        meta.file,
        `LongRoPE factors (rope_factors_long / rope_factors_short) in the ${arch} architecture are not supported (phi3's are)`,
      );
    return longRopeScaling(meta, arch, g, headDim);
  }
  if (g.header.tensors.has("rope_freqs.weight")) return llama3Scaling(meta, arch, g, headDim);
  const type = meta.get(`${arch}.rope.scaling.type`);
  if (type === undefined || type === "none") return null;
  if (type === "yarn") return yarnScaling(meta, arch);
  if (type !== "linear") {
    throw new GgufError(
      meta.file,
      `${arch}.rope.scaling.type "${String(type)}" is not supported (linear and yarn are)`,
    );
  }
  const factor = meta.num(`${arch}.rope.scaling.factor`);
  if (factor === undefined || factor <= 0)
    throw new GgufError(meta.file, `linear RoPE scaling needs ${arch}.rope.scaling.factor`);
  return factor === 1 ? null : { type: "linear", factor };
}

/**
 * YaRN as the file states it for llama.cpp's rope_yarn: a ramp between the dims that turn
 * yarn_beta_fast and yarn_beta_slow times over the original context (32 and 1 unless stated;
 * always floored and ceiled), cos/sin scaled by mscale(factor) = 0.1 · ln(factor) + 1 times the
 * file's attn_factor. The DeepSeek-style log multiplier and an extrapolation mix other than 1
 * change that in ways no architecture the engine runs uses, and are refused.
 */
function yarnScaling(meta: Meta, arch: string): RopeScaling {
  const k = (name: string) => `${arch}.rope.scaling.${name}`;
  const factor = meta.num(k("factor"));
  if (factor === undefined || !(factor > 0))
    throw new GgufError(meta.file, `YaRN RoPE scaling needs a positive ${k("factor")}`);
  const logMul = meta.num(k("yarn_log_multiplier")) ?? 0;
  if (logMul !== 0)
    throw new GgufError(
      meta.file,
      `${k("yarn_log_multiplier")} = ${logMul} is not supported (DeepSeek's YaRN magnitude)`,
    );
  const ext = meta.num(k("yarn_ext_factor"));
  if (ext !== undefined && ext !== 1 && ext >= 0)
    throw new GgufError(
      meta.file,
      `${k("yarn_ext_factor")} = ${ext} is not supported (only YaRN's full ramp, 1)`,
    );
  // llama.cpp's converter writes a model's own attention factor here; llama.cpp releases disagree
  // on it (older ones multiply it into the magnitude, newer ones replace it by mscale(factor)).
  const yarnAttn = meta.num(k("yarn_attn_factor"));
  if (yarnAttn !== undefined && yarnAttn !== 1)
    throw new GgufError(
      meta.file,
      `${k("yarn_attn_factor")} = ${yarnAttn} is not supported (llama.cpp releases apply it differently; ${k("attn_factor")} is)`,
    );
  const betaFast = meta.num(k("yarn_beta_fast")) ?? 32;
  const betaSlow = meta.num(k("yarn_beta_slow")) ?? 1;
  if (!(betaFast > betaSlow && betaSlow > 0))
    throw new GgufError(
      meta.file,
      `${k("yarn_beta_fast")} (${betaFast}) must exceed ${k("yarn_beta_slow")} (${betaSlow}) > 0`,
    );
  return {
    type: "yarn",
    factor,
    originalMaxPositionEmbeddings:
      meta.num(k("original_context_length")) ?? meta.need(`${arch}.context_length`),
    betaFast,
    betaSlow,
    attentionFactor: yarnMscale(factor) * (meta.num(k("attn_factor")) ?? 1),
    truncate: true,
  };
}

/**
 * Phi-3's LongRoPE: the short and long factor tables, the original context length and the
 * attention factor (1 where the file states none, as llama.cpp takes it). llama.cpp applies one
 * table to every position, the long one once the context it is given exceeds the original length;
 * the engine switches tables at that position, as it does for the same model from safetensors.
 */
function longRopeScaling(meta: Meta, arch: string, g: GgufFile, headDim: number): RopeScaling {
  const table = (name: string): number[] => {
    const info = g.header.tensors.get(name);
    if (info === undefined)
      throw new GgufError(meta.file, `LongRoPE needs both factor tables: missing "${name}"`);
    if (info.typeName !== "F32" || info.shape.length !== 1 || info.shape[0] !== headDim / 2)
      throw new GgufError(
        meta.file,
        `tensor "${name}" is ${info.typeName} [${info.shape.join(", ")}], want F32 [${headDim / 2}] (half the rotated dimensions)`,
      );
    // As the metadata's floats: the decimals the writer meant (1.05, not 1.0499999523).
    return Array.from(new Float32Array(g.readBytes(name).slice().buffer), shortestF32);
  };
  return {
    type: "longrope",
    shortFactor: table("rope_factors_short.weight"),
    longFactor: table("rope_factors_long.weight"),
    originalMaxPositionEmbeddings: meta.need(`${arch}.rope.scaling.original_context_length`),
    attentionFactor: meta.num(`${arch}.rope.scaling.attn_factor`) ?? 1,
  };
}

/** Llama 3 scaling recovered from the rope_freqs tensor (see gguf-rope.ts), or a clear error. */
function llama3Scaling(meta: Meta, arch: string, g: GgufFile, headDim: number): RopeScaling {
  const info = g.tensor("rope_freqs.weight");
  if (info.typeName !== "F32") {
    throw new GgufError(meta.file, `tensor "rope_freqs.weight" has type ${info.typeName} (want F32)`);
  }
  const divisors = tensorDataOver("f32", g.readBytes(info.name));
  const original =
    meta.num(`${arch}.rope.scaling.original_context_length`) ?? meta.need(`${arch}.context_length`);
  const theta = meta.num(`${arch}.rope.freq_base`) ?? 10000;
  const s = llama3FromRopeFreqs(divisors, headDim, theta, original);
  if (typeof s === "string") {
    throw new GgufError(meta.file, `tensor "rope_freqs.weight" (Llama 3 RoPE frequency divisors) ${s}`);
  }
  return s;
}

/**
 * The mixture of llama.cpp's llama architecture with experts (Mixtral), of granitemoe and of qwen3moe: every
 * layer a mixture, softmax over the experts, top-k, renormalised (as llama.cpp runs both).
 * Qwen3-MoE states each expert's width apart from the dense feed_forward_length.
 */
function mixtureOf(
  meta: Meta,
  arch: string,
  layers: number,
  ffn: number,
  g: GgufFile,
): MoeConfig | undefined {
  if (arch === "ernie4_5-moe") return ernieMixture(meta, layers, g);
  if (arch === "gpt-oss") return gptOssMixture(meta, layers);
  if (arch === "qwen2moe") return qwen2MoeMixture(meta, layers, g);
  if (arch === "glm4moe") return glm4MoeMixture(meta, layers);
  const numExperts = meta.num(`${arch}.expert_count`) ?? 0;
  if ((arch === "qwen3moe" || arch === "granitemoe" || arch === "olmoe") && numExperts === 0)
    throw new GgufError(meta.file, `a ${arch} file needs ${arch}.expert_count`);
  if (numExperts === 0) return undefined;
  if (arch !== "llama" && arch !== "qwen3moe" && arch !== "granitemoe" && arch !== "olmoe")
    throw new GgufError(
      meta.file,
      `experts in the ${arch} architecture are not supported (llama's, granitemoe's and qwen3moe's are)`,
    );
  const topK = meta.need(`${arch}.expert_used_count`);
  if (topK < 1 || topK > numExperts)
    throw new GgufError(
      meta.file,
      `${arch}.expert_used_count ${topK} is not between 1 and expert_count ${numExperts}`,
    );
  return {
    numExperts,
    topK,
    expertIntermediateSize: arch === "qwen3moe" ? meta.need(`${arch}.expert_feed_forward_length`) : ffn,
    // llama.cpp's olmoe keeps the chosen experts' share of the softmax (OLMoE's norm_topk_prob False).
    normalizeTopK: arch !== "olmoe",
    sparseLayers: Array.from({ length: layers }, () => true),
  };
}

/**
 * gpt-oss's mixture as llama.cpp runs it: every layer, the router's logits with their bias, top-k,
 * weights the softmax over the chosen; experts with biases and the SwiGLU clamped at llama.cpp's
 * fixed alpha 1.702 and limit 7.
 */
function gptOssMixture(meta: Meta, layers: number): MoeConfig {
  const { numExperts, topK } = expertCounts(meta, "gpt-oss");
  return {
    numExperts,
    topK,
    expertIntermediateSize: meta.need("gpt-oss.expert_feed_forward_length"),
    normalizeTopK: true,
    sparseLayers: Array.from({ length: layers }, () => true),
    routerBias: true,
    expertBias: true,
    swigluClamp: { alpha: 1.702, limit: 7 },
  };
}

/** A mixture's expert_count and expert_used_count, both required, the second at most the first. */
function expertCounts(meta: Meta, arch: string): { numExperts: number; topK: number } {
  const numExperts = meta.need(`${arch}.expert_count`);
  const topK = meta.need(`${arch}.expert_used_count`);
  if (topK > numExperts)
    throw new GgufError(
      meta.file,
      `${arch}.expert_used_count ${topK} is not between 1 and expert_count ${numExperts}`,
    );
  return { numExperts, topK };
}

/**
 * Qwen2-MoE as llama.cpp's qwen2moe runs it: every layer a mixture keeping the chosen experts'
 * softmax share, each expert expert_feed_forward_length wide, and a shared expert of
 * expert_shared_feed_forward_length (where above 0) behind its sigmoid gate.
 */
function qwen2MoeMixture(meta: Meta, layers: number, g: GgufFile): MoeConfig {
  const k = (name: string) => `qwen2moe.${name}`;
  const { numExperts, topK } = expertCounts(meta, "qwen2moe");
  const shared = meta.num(k("expert_shared_feed_forward_length")) ?? 0;
  if (shared > 0 && !g.header.tensors.has("blk.0.ffn_gate_inp_shexp.weight"))
    throw new GgufError(
      meta.file,
      'a qwen2moe shared expert needs its gate, "blk.0.ffn_gate_inp_shexp.weight"',
    );
  return {
    numExperts,
    topK,
    expertIntermediateSize: meta.need(k("expert_feed_forward_length")),
    normalizeTopK: false,
    sparseLayers: Array.from({ length: layers }, () => true),
    ...(shared > 0 ? { sharedExpertSize: shared, sharedExpertGate: true } : {}),
  };
}

/**
 * GLM-4.5 as llama.cpp's glm4moe runs it: mixtures from leading_dense_block_count on, each expert
 * scored by the sigmoid of its logit (expert_gating_func 2) and chosen with exp_probs_b added,
 * weights renormalised where expert_weights_norm and scaled by expert_weights_scale, and
 * expert_shared_count experts' worth of shared MLP.
 */
function glm4MoeMixture(meta: Meta, layers: number): MoeConfig {
  const k = (name: string) => `glm4moe.${name}`;
  const { numExperts, topK } = expertCounts(meta, "glm4moe");
  const gating = meta.num(k("expert_gating_func")) ?? 2;
  if (gating !== 2)
    throw new GgufError(meta.file, `${k("expert_gating_func")} ${gating} is not supported (2: sigmoid)`);
  const lead = meta.num(k("leading_dense_block_count")) ?? 0;
  if (lead >= layers)
    throw new GgufError(
      meta.file,
      `no layer of this glm4moe file is a mixture (${lead} leading dense of ${layers})`,
    );
  const width = meta.need(k("expert_feed_forward_length"));
  const shared = meta.num(k("expert_shared_count")) ?? 0;
  const scale = meta.num(k("expert_weights_scale")) ?? 1;
  const norm = meta.get(k("expert_weights_norm"));
  return {
    numExperts,
    topK,
    expertIntermediateSize: width,
    normalizeTopK: norm === undefined ? true : norm === true,
    sparseLayers: Array.from({ length: layers }, (_, l) => l >= lead),
    sigmoidScores: true,
    selectionBias: true,
    ...(scale !== 1 ? { routedScale: scale } : {}),
    ...(shared > 0 ? { sharedExpertSize: shared * width } : {}),
  };
}

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

/**
 * ERNIE 4.5 MoE as llama.cpp's ernie4_5-moe runs it: layer l a mixture from
 * leading_dense_block_count on where (l + 1) is a multiple of interleave_moe_layer_step; softmax
 * probabilities, chosen with the layer's exp_probs_b added where the file has it, renormalised;
 * a shared expert of expert_shared_feed_forward_length where that is above 0.
 */
function ernieMixture(meta: Meta, layers: number, g: GgufFile): MoeConfig {
  const k = (name: string) => `ernie4_5-moe.${name}`;
  const { numExperts, topK } = expertCounts(meta, "ernie4_5-moe");
  const lead = meta.num(k("leading_dense_block_count")) ?? 0;
  const step = meta.need(k("interleave_moe_layer_step"));
  const sparseLayers = Array.from({ length: layers }, (_, l) => l >= lead && (l + 1) % step === 0);
  const first = sparseLayers.indexOf(true);
  if (first < 0)
    throw new GgufError(
      meta.file,
      `no layer of this ernie4_5-moe file is a mixture (${lead} leading dense of ${layers})`,
    );
  const shared = meta.num(k("expert_shared_feed_forward_length")) ?? 0;
  return {
    numExperts,
    topK,
    expertIntermediateSize: meta.need(k("expert_feed_forward_length")),
    normalizeTopK: true,
    sparseLayers,
    ...(g.header.tensors.has(`blk.${first}.exp_probs_b.bias`) ? { selectionBias: true } : {}),
    ...(shared > 0 ? { sharedExpertSize: shared } : {}),
  };
}

function ggufConfig(meta: Meta, arch: SupportedArch, g: GgufFile): ModelConfig {
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
