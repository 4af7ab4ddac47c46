// The mixture of experts a GGUF file states for each architecture with experts, as llama.cpp runs it.
import type { MoeConfig } from "./config.js";
import type { Meta } from "./gguf-meta.js";
import { GgufError, type GgufFile } from "./gguf-reader.js";

/**
 * The mixture of llama.cpp's llama architecture with experts (Mixtral), of granitemoe and of qwen3moe: every
 * layer a mixture, softmax over the experts, top-k, renormalised (as llama.cpp runs both).
 * Qwen3-MoE states each expert's width apart from the dense feed_forward_length.
 */
export function mixtureOf(
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
