import { type Architecture, type ModelConfig, noRopeLayers, ropeLayersEvery } from "../model/config.js";
import type { GemmaGgufArch } from "../model/gguf-gemma.js";
import { SMOLLM3_NO_ROPE_STEP } from "../model/gguf-names.js";
import { gemmaGgufArchitecture } from "./gguf-gemma.js";

/**
 * Which of llama.cpp's architectures a model is exported as, and the refusal, by name, of what
 * llama.cpp would run differently from the engine. One rule per family; the checks every family
 * shares (RoPE scaling, windows, biases) come first.
 */

export type GgufArch =
  | "llama"
  | "qwen2"
  | "qwen3"
  | "qwen3moe"
  | "phi3"
  | "granite"
  | "granitemoe"
  | "smollm3"
  | "olmo2"
  | "olmoe"
  | "ernie4_5"
  | "ernie4_5-moe"
  | "gpt-oss"
  | "glm4"
  | "qwen2moe"
  | "glm4moe"
  | "seed_oss"
  | "exaone4"
  | GemmaGgufArch;

type Rule = (c: ModelConfig, refuse: (why: string) => never, label: string) => GgufArch;

/** Families the writer knows (Mistral and Mixtral are stored as llama.cpp's llama). */
const RULES: Partial<Record<Architecture, Rule>> = {
  llama: plainLlama,
  mistral: plainLlama,
  mixtral: plainLlama,
  qwen2: () => "qwen2",
  qwen3: (c, refuse) =>
    c.attentionBias ? refuse("a qwen3 model with q/k/v biases is not supported") : "qwen3",
  qwen3_moe: qwen3Moe,
  phi3,
  // Gemma's windows and scales are checked by its own rule (gguf-gemma.ts).
  gemma: (c, _, label) => gemmaGgufArchitecture(c, label),
  gemma2: (c, _, label) => gemmaGgufArchitecture(c, label),
  gemma3_text: (c, _, label) => gemmaGgufArchitecture(c, label),
  granite,
  smollm3,
  olmo2,
  olmo3,
  olmoe,
  // llama.cpp's ernie4_5 is Llama's graph with interleaved q/k rows (written back as the checkpoint had them).
  ernie4_5: (c, refuse) =>
    c.attentionBias || c.moe
      ? refuse("llama.cpp's ernie4_5 (dense) wants no q/k/v biases or experts")
      : "ernie4_5",
  ernie4_5_moe: ernieMoe,
  gpt_oss: gptOss,
  glm4,
  qwen2_moe: qwen2Moe,
  glm4_moe: glm4Moe,
  // llama.cpp's seed_oss: Llama's graph with q/k/v biases where the file has them (it loads no o_proj bias).
  exaone4,
  seed_oss: (c, refuse) =>
    c.moe || c.qkNorm || c.outputBias
      ? refuse("llama.cpp's seed_oss has no o_proj bias, experts or q/k norms")
      : "seed_oss",
};

/** llama.cpp's architecture for a config, or a clear error for what it would run differently. */
export function ggufArchitecture(c: ModelConfig, label: string): GgufArch {
  const refuse = (why: string): never => {
    throw new Error(`GGUF export of ${label}: ${why}`);
  };
  const rule = RULES[c.architecture];
  if (!rule) refuse(`the ${c.architecture} family is not supported (${Object.keys(RULES).join(", ")})`);
  const yarn = c.ropeScaling?.type === "yarn" ? c.ropeScaling : null;
  if (yarn && !yarn.truncate)
    refuse(
      "YaRN with truncate = false has no equivalent in llama.cpp (it always floors and ceils the ramp's ends)",
    );
  // Measured against the llama.cpp the tests run: files with yarn_beta_fast 16 and yarn_beta_slow
  // 2 gave the tokens of 32 and 1, its context's defaults, which win over the file's keys.
  if (yarn && (yarn.betaFast !== 32 || yarn.betaSlow !== 1))
    refuse(
      `YaRN beta_fast ${yarn.betaFast} / beta_slow ${yarn.betaSlow}: llama.cpp runs YaRN with 32 and 1 whatever the file's keys say`,
    );
  if (
    !c.architecture.startsWith("gemma") &&
    c.architecture !== "olmo3" &&
    c.architecture !== "gpt_oss" &&
    c.architecture !== "exaone4"
  )
    refuseWindow(c, refuse);
  return rule!(c, refuse, label);
}

/** A window shorter than the context: llama.cpp's llama has none, and its phi3 reads one and turns it off. */
function refuseWindow(c: ModelConfig, refuse: (why: string) => never): void {
  if (c.slidingWindow === null || c.slidingWindow >= c.maxPositionEmbeddings) return;
  const where = c.architecture === "phi3" ? "phi3 (which ignores its window)" : "llama architecture";
  refuse(
    `sliding-window attention (window ${c.slidingWindow} < context ${c.maxPositionEmbeddings}) has no equivalent in llama.cpp's ${where}`,
  );
}

function plainLlama(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  if (c.attentionBias) refuse(`a ${c.architecture} model with q/k/v biases is not supported`);
  if (c.headDim % 2 !== 0) refuse(`head_dim ${c.headDim} is odd`);
  return "llama";
}

function olmo2(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  if (!c.qkNorm || !c.qkNormFull || !c.postNormsOnly || c.attentionBias || c.moe)
    refuse(
      "llama.cpp's olmo2 wants norms after the blocks only, whole-projection q/k norms, no biases or experts",
    );
  return "olmo2";
}

/**
 * OLMo 3 as llama.cpp's olmo2 with a window: llama.cpp makes every fourth layer full whatever the
 * file says, rotates the window layers with the (window) base unscaled, the full ones as the model.
 */
function olmo3(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  const every4 = Array.from({ length: c.numLayers }, (_, l) => l % 4 < 3);
  const layers = c.slidingLayers ?? Array.from({ length: c.numLayers }, () => c.slidingWindow !== null);
  if (c.slidingWindow !== null && JSON.stringify(layers) !== JSON.stringify(every4))
    refuse(
      `llama.cpp's olmo2 attends within its window on all but every fourth layer; this model's window layers are ${layers.flatMap((s, l) => (s ? [l] : [])).join(", ")}`,
    );
  if (c.slidingWindow !== null && c.localRopeTheta === undefined)
    refuse("llama.cpp's olmo2 rotates window layers without RoPE scaling; this model scales them");
  return olmo2(c, refuse);
}

/**
 * llama.cpp's olmoe: every layer a mixture keeping the chosen experts' softmax share, q/k normed
 * over their whole projections, and (its k norm being as wide as the hidden state) no grouped queries.
 */
function olmoe(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  if (!c.moe || c.moe.sparseLayers.some((s) => !s) || c.moe.normalizeTopK)
    refuse(
      "llama.cpp's olmoe makes every layer a mixture without renormalising the top-k weights; this model does not",
    );
  if (!c.qkNorm || !c.qkNormFull || c.postNormsOnly || c.attentionBias)
    refuse(
      "llama.cpp's olmoe wants whole-projection q/k norms before RoPE, norms before each block, no biases",
    );
  if (c.numKvHeads !== c.numHeads)
    refuse(
      `llama.cpp's olmoe has no grouped queries (its k norm is hidden-wide); this model has ${c.numKvHeads} KV heads for ${c.numHeads}`,
    );
  return "olmoe";
}

/** llama.cpp's qwen3moe runs every layer as a mixture and renormalises the top-k weights. */
function qwen3Moe(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  if (!c.moe || c.moe.sparseLayers.some((s) => !s))
    refuse(
      "a qwen3_moe model with dense layers (mlp_only_layers, decoder_sparse_step) has no equivalent in llama.cpp's qwen3moe",
    );
  if (!c.moe!.normalizeTopK)
    refuse(
      "llama.cpp's qwen3moe renormalises the top-k expert weights; this model does not (norm_topk_prob false)",
    );
  if (c.attentionBias) refuse("a qwen3_moe model with q/k/v biases is not supported");
  return "qwen3moe";
}

function phi3(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  if (!c.fusedProjections || c.attentionBias || c.moe)
    refuse("llama.cpp's phi3 wants fused projections without biases or experts");
  if (c.numHeads * c.headDim !== c.hiddenSize)
    refuse(
      `llama.cpp's phi3 needs heads × head_dim = hidden (${c.numHeads} × ${c.headDim} ≠ ${c.hiddenSize})`,
    );
  // LongRoPE is written as llama.cpp's converter writes it (to-gguf.ts, phi3Metadata); llama.cpp
  // applies one factor table to every position, the long one once the context it is given
  // exceeds the original length, where the engine switches tables at that position.
  return "phi3";
}

/** llama.cpp's smollm3 fixes its no-RoPE layers at every fourth; no key states others. */
function smollm3(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  const fixed = ropeLayersEvery(c.numLayers, SMOLLM3_NO_ROPE_STEP).ropeLayers;
  if (JSON.stringify(c.ropeLayers) !== JSON.stringify(fixed) || c.attentionBias || c.moe)
    refuse(
      `llama.cpp's smollm3 leaves RoPE out of every fourth layer (3, 7, ...) and has no biases or experts; this model's no-RoPE layers are ${noRopeLayers(c).join(", ") || "none"}`,
    );
  return "smollm3";
}

/** Granite, or with experts llama.cpp's granitemoe: every layer a mixture, the top-k softmax renormalised. */
function granite(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  if (c.attentionBias) refuse("llama.cpp's granite wants no q/k/v biases");
  if (!c.moe) return "granite";
  if (c.moe.sparseLayers.some((s) => !s) || !c.moe.normalizeTopK)
    refuse(
      "llama.cpp's granitemoe makes every layer a mixture with renormalised top-k weights; this model does not",
    );
  return "granitemoe";
}

/**
 * llama.cpp's gpt-oss: window attention on the even layers, sinks, biases everywhere, every layer a
 * mixture routed by softmax over the chosen logits, and the clamped SwiGLU at its fixed alpha 1.702
 * and limit 7 (llama.cpp reads neither from the file).
 */
function gptOss(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  const moe = c.moe;
  if (!moe?.routerBias || !moe.expertBias || !moe.normalizeTopK || moe.sparseLayers.some((s) => !s))
    refuse(
      "llama.cpp's gpt-oss wants every layer a biased mixture routed by softmax over the chosen experts",
    );
  const clamp = moe!.swigluClamp;
  if (clamp?.alpha !== 1.702 || clamp.limit !== 7)
    refuse(
      `llama.cpp's gpt-oss fixes the SwiGLU's alpha at 1.702 and limit at 7; this model has ${clamp ? `${clamp.alpha} and ${clamp.limit}` : "none"}`,
    );
  if (!c.attnSinks || !c.attentionBias || !c.outputBias)
    refuse("llama.cpp's gpt-oss wants sinks and q/k/v/o biases");
  const even = Array.from({ length: c.numLayers }, (_, l) => l % 2 === 0);
  if (c.slidingWindow === null || JSON.stringify(c.slidingLayers) !== JSON.stringify(even))
    refuse(
      "llama.cpp's gpt-oss attends within its window on the even layers (0, 2, ...) and over all on the odd ones",
    );
  if (c.localRopeTheta !== undefined) refuse("llama.cpp's gpt-oss rotates every layer alike");
  return "gpt-oss";
}

/**
 * llama.cpp's glm4: q/k/v biases where present, none on o_proj, gate/up fused in ffn_up, a norm on
 * each block's input and output, RoPE on `rope.dimension_count` dims in interleaved pairs.
 */
function glm4(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  if (!c.fusedGateUp || !c.postNorms || c.outputBias || c.moe || c.fusedProjections)
    refuse(
      "llama.cpp's glm4 wants gate/up fused, a norm after each block as well as before, no o_proj bias or experts",
    );
  return "glm4";
}

/**
 * llama.cpp's qwen2moe: every layer a mixture keeping the chosen experts' softmax share, and a shared
 * expert behind its sigmoid gate where the model has one.
 */
function qwen2Moe(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  const moe = c.moe;
  if (!moe || moe.sparseLayers.some((s) => !s) || moe.normalizeTopK)
    refuse(
      "llama.cpp's qwen2moe makes every layer a mixture without renormalising the top-k weights; this model does not (mlp_only_layers, decoder_sparse_step or norm_topk_prob)",
    );
  if (moe!.sharedExpertSize && !moe!.sharedExpertGate) refuse("llama.cpp's qwen2moe gates its shared expert");
  return "qwen2moe";
}

/** llama.cpp's ernie4_5-moe: mixtures from a number of leading dense layers on, every step-th. */
function ernieMoe(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  const moe = c.moe;
  if (c.attentionBias || !moe || !moe.normalizeTopK || !ernieLayerPattern(c))
    refuse(
      `llama.cpp's ernie4_5-moe wants renormalised experts on every step-th layer after the leading dense ones, and no q/k/v biases; this model's mixtures are on layers ${
        moe?.sparseLayers.flatMap((s, l) => (s ? [l] : [])).join(", ") ?? "none"
      }`,
    );
  return "ernie4_5-moe";
}

/**
 * ERNIE 4.5 MoE's mixture layers as llama.cpp states them: the leading dense layers' count and the
 * step (layer l a mixture where l ≥ lead and (l + 1) is a multiple of step), or null where no such
 * pair gives exactly the model's layers (transformers' moe_layer_end_index before the last layer).
 */
export function ernieLayerPattern(c: ModelConfig): { lead: number; step: number } | null {
  const sparse = c.moe?.sparseLayers ?? [];
  const lead = sparse.indexOf(true);
  if (lead < 0) return null;
  for (let step = 1; step <= sparse.length; step++) {
    if (sparse.every((s, l) => s === (l >= lead && (l + 1) % step === 0))) return { lead, step };
  }
  return null;
}

/**
 * llama.cpp's glm4moe: dense layers first, then every layer a mixture scored by sigmoid and chosen
 * with its correction bias, and a shared expert a whole number of experts wide (it multiplies the
 * expert width by expert_shared_count).
 */
function glm4Moe(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  const moe = c.moe;
  const lead = moe ? moe.sparseLayers.indexOf(true) : -1;
  if (!moe?.sigmoidScores || !moe.selectionBias || lead < 0 || moe.sparseLayers.slice(lead).some((s) => !s))
    refuse(
      "llama.cpp's glm4moe wants leading dense layers, then every layer a mixture scored by sigmoid with a selection bias",
    );
  const shared = moe!.sharedExpertSize ?? 0;
  if (shared === 0 || shared % moe!.expertIntermediateSize !== 0)
    refuse(
      `llama.cpp's glm4moe wants a shared expert a whole number of experts wide (${shared} for experts ${moe!.expertIntermediateSize} wide)`,
    );
  return "glm4moe";
}

/**
 * llama.cpp's exaone4: norms on the blocks' outputs only and per-head q/k norms; window layers
 * only in a 64-layer model (it recognises the 32B by its layer count), three of every four, the
 * fourth global without RoPE. Any other model must rotate every layer over the whole context.
 */
function exaone4(c: ModelConfig, refuse: (why: string) => never): GgufArch {
  if (!c.qkNorm || c.qkNormFull || !c.postNormsOnly || c.attentionBias || c.moe)
    refuse("llama.cpp's exaone4 wants norms after the blocks only, per-head q/k norms, no biases or experts");
  const windowed = c.slidingWindow !== null && c.slidingWindow < c.maxPositionEmbeddings;
  const pattern = Array.from({ length: c.numLayers }, (_, l) => l % 4 < 3);
  const same = (a: readonly boolean[] | undefined) => JSON.stringify(a) === JSON.stringify(pattern);
  if (windowed && (c.numLayers !== 64 || !same(c.slidingLayers) || !same(c.ropeLayers)))
    refuse(
      "llama.cpp's exaone4 attends within a window only in 64-layer models, on three of every four layers, the fourth global without RoPE",
    );
  if (!windowed && c.ropeLayers)
    refuse("llama.cpp's exaone4 rotates every layer of a model without a window");
  return "exaone4";
}
