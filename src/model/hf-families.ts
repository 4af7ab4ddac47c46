import {
  type Architecture,
  type ModelConfig,
  type MoeConfig,
  OLMO2_NORMS,
  ropeLayersEvery,
  ropeLayersOf,
} from "./config.js";
import type { RawConfig } from "./hf-config.js";
import { type GemmaFeatures, gemmaFeatures } from "./hf-gemma.js";

/**
 * What distinguishes each family's graph, read from its config.json fields: projection biases,
 * the sliding window, Qwen3's q/k norms, Phi-3's fused projections, the mixtures of experts and
 * Gemma's norms, activation, scaling and soft-capping (hf-gemma.ts), and Granite's multipliers.
 * A field that would change the math in a way we do not implement is refused by name.
 */
export type FamilyFeatures = Pick<
  ModelConfig,
  | "attentionBias"
  | "fusedProjections"
  | "moe"
  | "ropeLayers"
  | "qkNormFull"
  | "postNormsOnly"
  | "outputBias"
  | "attnSinks"
  | "fusedGateUp"
  | "postNorms"
> &
  GemmaFeatures &
  GraniteFeatures;

/** Granite's four multipliers (GraniteConfig). */
type GraniteFeatures = Pick<ModelConfig, "embedMultiplier" | "residualMultiplier" | "logitsDivisor">;

export function familyFeatures(raw: RawConfig, arch: Architecture, file: string): FamilyFeatures {
  switch (arch) {
    case "llama":
      return { attentionBias: noAttentionBias(raw, arch, file), slidingWindow: null };
    case "mistral":
      return { attentionBias: noAttentionBias(raw, arch, file), slidingWindow: raw.sliding_window ?? null };
    case "qwen2":
      // Qwen2 always carries q/k/v biases (and none on o_proj).
      return { attentionBias: true, slidingWindow: qwenSlidingWindow(raw, arch, file) };
    case "qwen3":
      return {
        attentionBias: noAttentionBias(raw, arch, file),
        slidingWindow: qwenSlidingWindow(raw, arch, file),
        qkNorm: true,
      };
    case "phi3":
      return {
        attentionBias: noAttentionBias(raw, arch, file),
        slidingWindow: raw.sliding_window ?? null,
        fusedProjections: true,
      };
    case "mixtral":
      return {
        attentionBias: noAttentionBias(raw, arch, file),
        slidingWindow: raw.sliding_window ?? null,
        moe: mixtralExperts(raw, file),
      };
    case "qwen3_moe": {
      const moe = qwen3MoeExperts(raw, file);
      return {
        attentionBias: noAttentionBias(raw, arch, file),
        slidingWindow: qwenSlidingWindow(raw, arch, file),
        qkNorm: true,
        ...(moe ? { moe } : {}),
      };
    }
    case "gemma":
    case "gemma2":
    case "gemma3_text":
      return { attentionBias: noAttentionBias(raw, arch, file), ...gemmaFeatures(raw, arch, file) };
    case "smollm3":
      return {
        attentionBias: noAttentionBias(raw, arch, file),
        slidingWindow: qwenSlidingWindow(raw, arch, file),
        ...smollm3RopeLayers(raw, file),
      };
    case "olmo2":
      return {
        attentionBias: noAttentionBias(raw, arch, file),
        slidingWindow: qwenSlidingWindow(raw, arch, file),
        ...OLMO2_NORMS,
      };
    case "olmoe":
      return {
        attentionBias: noAttentionBias(raw, arch, file),
        slidingWindow: null,
        ...olmoeFeatures(raw, file),
      };
    case "olmo3":
      return { attentionBias: noAttentionBias(raw, arch, file), ...olmo3Windows(raw, file), ...OLMO2_NORMS };
    case "granite":
      return {
        attentionBias: noAttentionBias(raw, arch, file),
        slidingWindow: null,
        ...graniteFeatures(raw),
      };
    case "ernie4_5":
      return { attentionBias: ernieNoBias(raw, "ernie4_5", file), slidingWindow: null };
    case "gpt_oss":
      return gptOssFeatures(raw, file);
    case "qwen2_moe":
    case "glm4_moe":
    case "ernie4_5_moe":
      return sharedExpertFamily(raw, arch, file);
    case "exaone4":
    case "seed_oss":
    case "glm4":
      return denseFamily(raw, arch, file);
  }
}

/** The dense families added last: EXAONE 4, Seed-OSS, GLM-4-0414. */
function denseFamily(raw: RawConfig, arch: "exaone4" | "seed_oss" | "glm4", file: string): FamilyFeatures {
  switch (arch) {
    case "exaone4":
      // EXAONE 4: OLMo 2's layers (norms on the blocks' outputs only) with Qwen3's per-head q/k
      // norms, and window layers among global ones that attend without RoPE.
      return {
        attentionBias: noAttentionBias(raw, arch, file),
        qkNorm: true,
        postNormsOnly: true,
        ...exaoneWindows(raw, file),
      };
    case "seed_oss":
      // Seed-OSS: Llama's layers with q/k/v biases, and o_proj's where attention_out_bias says.
      return {
        attentionBias: raw.attention_bias ?? true,
        ...(raw.attention_out_bias ? { outputBias: true } : {}),
        slidingWindow: null,
      };
    case "glm4":
      // GLM-4-0414: q/k/v biases (none on o_proj), gate/up fused, a norm on each block's output
      // as well as on its input (hf-gemma's post-norm graph under GLM's names, weight-names.ts).
      return {
        attentionBias: raw.attention_bias ?? true,
        fusedGateUp: true,
        postNorms: true,
        slidingWindow: null,
      };
  }
}

/** The mixtures with a shared expert beside the routed ones: Qwen2-MoE, GLM-4.5, ERNIE 4.5 MoE. */
function sharedExpertFamily(
  raw: RawConfig,
  arch: "qwen2_moe" | "glm4_moe" | "ernie4_5_moe",
  file: string,
): FamilyFeatures {
  switch (arch) {
    case "qwen2_moe": {
      const moe = qwen2MoeExperts(raw, file);
      return {
        attentionBias: raw.qkv_bias ?? true,
        slidingWindow: qwenSlidingWindow(raw, "qwen2_moe", file),
        ...(moe ? { moe } : {}),
      };
    }
    case "glm4_moe": {
      // GLM-4.5: Llama's pre-norm layers with q/k/v biases (attention_bias), optional per-head q/k
      // norms, half of each head rotated (partialRotary), the first layers dense.
      const moe = glm4MoeExperts(raw, file);
      return {
        attentionBias: raw.attention_bias ?? false,
        slidingWindow: null,
        ...(raw.use_qk_norm ? { qkNorm: true } : {}),
        ...(moe ? { moe } : {}),
      };
    }
    case "ernie4_5_moe": {
      const moe = ernieExperts(raw, file);
      return {
        attentionBias: ernieNoBias(raw, "ernie4_5_moe", file),
        slidingWindow: null,
        ...(moe ? { moe } : {}),
      };
    }
  }
}

/**
 * ERNIE 4.5 MoE (transformers' Ernie4_5_MoeConfig): layer l is a mixture where (l + 1) is a
 * multiple of moe_layer_interval and moe_layer_start_index ≤ l ≤ moe_layer_end_index (-1: the
 * last); the others run the dense MLP of intermediate_size. The router's softmax probabilities
 * plus e_score_correction_bias choose moe_k of moe_num_experts, weighted by the probabilities
 * renormalised; moe_num_shared_experts experts' worth of shared MLP (moe_intermediate_size each)
 * joins every token's mixture.
 */
function ernieExperts(raw: RawConfig, file: string): MoeConfig | undefined {
  const numExperts = raw.moe_num_experts ?? 64;
  const topK = raw.moe_k ?? 6;
  const n = raw.num_hidden_layers;
  const start = raw.moe_layer_start_index ?? 1;
  const end =
    raw.moe_layer_end_index == null || raw.moe_layer_end_index < 0 ? n - 1 : raw.moe_layer_end_index;
  const step = raw.moe_layer_interval ?? 1;
  const sparseLayers = Array.from(
    { length: n },
    (_, l) => numExperts > 0 && (l + 1) % step === 0 && l >= start && l <= end,
  );
  if (!sparseLayers.includes(true)) return undefined;
  checkTopK(numExperts, topK, file, "moe_k");
  const width = raw.moe_intermediate_size ?? 1536;
  const shared = raw.moe_num_shared_experts ?? 2;
  return {
    numExperts,
    topK,
    expertIntermediateSize: width,
    normalizeTopK: true,
    sparseLayers,
    selectionBias: true,
    ...(shared > 0 ? { sharedExpertSize: shared * width } : {}),
  };
}

/**
 * EXAONE 4's layers (transformers' Exaone4Config): layer_types where given; else, with a
 * sliding_window, sliding_window_pattern as a period (every n-th layer global) or as letters
 * (L local, G global, repeating from layer 0; the last layer global whatever they say). The window
 * layers rotate q and k, the global ones attend without RoPE; without a window, every layer
 * attends globally with RoPE.
 */
function exaoneWindows(
  raw: RawConfig,
  file: string,
): Pick<ModelConfig, "slidingWindow" | "slidingLayers" | "ropeLayers"> {
  const n = raw.num_hidden_layers;
  const window = raw.sliding_window ?? null;
  const p = raw.sliding_window_pattern ?? 4;
  let sliding: boolean[];
  if (raw.layer_types) {
    if (raw.layer_types.length !== n)
      throw new Error(`${file}: layer_types has ${raw.layer_types.length} entries for ${n} layers`);
    sliding = raw.layer_types.map((t, l) => {
      if (t !== "sliding_attention" && t !== "full_attention")
        throw new Error(
          `${file}: layer_types[${l}] = "${t}" is not supported (full_attention or sliding_attention)`,
        );
      return t === "sliding_attention";
    });
  } else if (window === null) sliding = Array.from({ length: n }, () => false);
  else if (typeof p === "string")
    sliding = Array.from({ length: n }, (_, l) => l < n - 1 && p[l % p.length] === "L");
  else sliding = Array.from({ length: n }, (_, l) => (l + 1) % p !== 0);
  if (window === null || !sliding.includes(true)) return { slidingWindow: null };
  return { slidingWindow: window, slidingLayers: sliding, ...ropeLayersOf(sliding) };
}

/**
 * GLM-4.5 (transformers' Glm4MoeConfig, DeepSeek V3's router): layers from first_k_dense_replace
 * on are mixtures of n_routed_experts, the others the dense MLP of intermediate_size. Each
 * expert's score is the sigmoid of its router logit; the top num_experts_per_tok of score +
 * e_score_correction_bias are chosen, weighted by their scores (renormalised with norm_topk_prob)
 * times routed_scaling_factor; n_shared_experts experts' worth of shared MLP joins the mixture.
 * Group-limited choice (topk_group of n_group groups) is not run, so a config that limits is refused.
 */
function glm4MoeExperts(raw: RawConfig, file: string): MoeConfig | undefined {
  const numExperts = raw.n_routed_experts ?? raw.num_experts ?? 128;
  const topK = raw.num_experts_per_tok ?? 8;
  const nGroup = raw.n_group ?? 1;
  const topkGroup = raw.topk_group ?? 1;
  if (topkGroup < nGroup)
    throw new Error(
      `${file}: glm4_moe topk_group ${topkGroup} of n_group ${nGroup} (experts chosen within groups) is not supported`,
    );
  const first = raw.first_k_dense_replace ?? 1;
  const sparseLayers = Array.from({ length: raw.num_hidden_layers }, (_, l) => numExperts > 0 && l >= first);
  if (!sparseLayers.includes(true)) return undefined;
  checkTopK(numExperts, topK, file);
  const width = raw.moe_intermediate_size ?? 1408;
  const shared = raw.n_shared_experts ?? 1;
  const scale = raw.routed_scaling_factor ?? 1;
  return {
    numExperts,
    topK,
    expertIntermediateSize: width,
    normalizeTopK: raw.norm_topk_prob ?? true,
    sparseLayers,
    sigmoidScores: true,
    selectionBias: true,
    ...(scale !== 1 ? { routedScale: scale } : {}),
    ...(shared > 0 ? { sharedExpertSize: shared * width } : {}),
  };
}

/**
 * ERNIE 4.5 (dense, and the MoE's attention) is Llama's graph with q/k rows in interleaved RoPE pairs, which the loaders
 * reorder (qk-row-order.ts). `use_bias` puts biases on o_proj and the MLP too, which the graph does
 * not express; the remote code's `compression_ratio` rescales positions.
 */
function ernieNoBias(raw: RawConfig, arch: "ernie4_5" | "ernie4_5_moe", file: string): false {
  if (raw.use_bias === true)
    throw new Error(
      `${file}: ${arch} use_bias=true (biases on every projection, o_proj and the MLP included) is not supported`,
    );
  if (raw.compression_ratio != null && raw.compression_ratio !== 1)
    throw new Error(
      `${file}: ${arch} compression_ratio ${raw.compression_ratio} (positions rescaled before RoPE) is not supported`,
    );
  return noAttentionBias(raw, arch, file);
}

/**
 * SmolLM3: `no_rope_layers` (1: the layer rotates q and k, 0: it does not), or, where the config
 * leaves it out, every `no_rope_layer_interval`-th layer (default 4) without, as transformers
 * derives it. Every layer rotating leaves the field out.
 */
function smollm3RopeLayers(raw: RawConfig, file: string): Pick<ModelConfig, "ropeLayers"> {
  const n = raw.num_hidden_layers;
  const given = raw.no_rope_layers;
  if (given != null && given.length !== n)
    throw new Error(`${file}: no_rope_layers has ${given.length} entries for ${n} layers`);
  return given
    ? ropeLayersOf(given.map((v) => v === 1))
    : ropeLayersEvery(n, raw.no_rope_layer_interval ?? 4);
}

/**
 * Granite (transformers' GraniteConfig): embeddings times embedding_multiplier, each block's output
 * times residual_multiplier before it joins the residual stream, logits divided by logits_scaling,
 * and scores scaled by attention_multiplier itself, not 1/√head_dim (all default to 1, the
 * attention scale included). Multipliers of 1 leave no op in the graph.
 */
function graniteFeatures(raw: RawConfig): GraniteFeatures & Pick<ModelConfig, "attentionScale"> {
  const unlessOne = <K extends keyof GraniteFeatures>(key: K, v: number | null | undefined) =>
    v == null || v === 1 ? {} : { [key]: v };
  return {
    attentionScale: raw.attention_multiplier ?? 1,
    ...unlessOne("embedMultiplier", raw.embedding_multiplier),
    ...unlessOne("residualMultiplier", raw.residual_multiplier),
    ...unlessOne("logitsDivisor", raw.logits_scaling),
  };
}

/** In transformers' Llama-style attention `attention_bias` also puts a bias on o_proj, which the graph does not express. */
export function noAttentionBias(raw: RawConfig, arch: Architecture, file: string): false {
  if (raw.attention_bias === true) {
    throw new Error(`${file}: attention_bias=true (biases on q/k/v and o_proj) is not supported for ${arch}`);
  }
  return false;
}

/**
 * Qwen's sliding window applies only to some layers (use_sliding_window with max_window_layers,
 * or layer_types): attention would need a window per layer, which it does not have.
 */
function qwenSlidingWindow(raw: RawConfig, arch: Architecture, file: string): null {
  if (raw.use_sliding_window === true) {
    throw new Error(`${file}: ${arch} use_sliding_window=true (per-layer sliding window) is not supported`);
  }
  const sliding = (raw.layer_types ?? []).findIndex((t) => t !== "full_attention");
  if (sliding !== -1) {
    throw new Error(
      `${file}: layer_types[${sliding}] = "${raw.layer_types![sliding]}" is not supported (only full_attention)`,
    );
  }
  return null;
}

function checkTopK(numExperts: number, topK: number, file: string, field = "num_experts_per_tok"): void {
  if (topK > numExperts) {
    throw new Error(`${file}: ${field} (${topK}) exceeds the number of experts (${numExperts})`);
  }
}

/** Mixtral: every layer a mixture; softmax over all experts, top-k, renormalised (= softmax over the top-k logits). */
function mixtralExperts(raw: RawConfig, file: string): MoeConfig {
  const numExperts = raw.num_local_experts ?? 8;
  const topK = raw.num_experts_per_tok ?? 2;
  if (numExperts === 0) throw new Error(`${file}: num_local_experts must be positive`);
  checkTopK(numExperts, topK, file);
  return {
    numExperts,
    topK,
    expertIntermediateSize: raw.intermediate_size,
    normalizeTopK: true,
    sparseLayers: Array.from({ length: raw.num_hidden_layers }, () => true),
  };
}

/**
 * Qwen3-MoE: layer l is a mixture unless it is in mlp_only_layers or (l + 1) is not a multiple
 * of decoder_sparse_step; the others run the dense MLP of intermediate_size. The top-k softmax
 * probabilities are renormalised only with norm_topk_prob. No layer a mixture: no MoeConfig.
 */
function qwen3MoeExperts(raw: RawConfig, file: string): MoeConfig | undefined {
  if ((raw.shared_expert_intermediate_size ?? 0) > 0) {
    throw new Error(
      `${file}: shared_expert_intermediate_size (a shared expert) is not supported for qwen3_moe`,
    );
  }
  return qwenExperts(raw, file);
}

/**
 * Qwen1.5-MoE and Qwen2-MoE (transformers' Qwen2MoeConfig): Qwen3-MoE's routed experts (default
 * 60, top-4, not renormalised) and a shared expert of shared_expert_intermediate_size every token
 * runs, scaled by sigmoid(shared_expert_gate · x).
 */
function qwen2MoeExperts(raw: RawConfig, file: string): MoeConfig | undefined {
  const moe = qwenExperts(
    {
      ...raw,
      num_experts: raw.num_experts ?? 60,
      num_experts_per_tok: raw.num_experts_per_tok ?? 4,
      moe_intermediate_size: raw.moe_intermediate_size ?? 1408,
    },
    file,
  );
  const shared = raw.shared_expert_intermediate_size ?? 5632;
  if (!moe) return undefined;
  return shared > 0 ? { ...moe, sharedExpertSize: shared, sharedExpertGate: true } : moe;
}

/** The routed experts of Qwen's MoE configs: num_experts, top num_experts_per_tok, on the layers decoder_sparse_step and mlp_only_layers leave. */
function qwenExperts(raw: RawConfig, file: string): MoeConfig | undefined {
  const numExperts = raw.num_experts ?? 128;
  const topK = raw.num_experts_per_tok ?? 8;
  const step = raw.decoder_sparse_step ?? 1;
  const denseOnly = raw.mlp_only_layers ?? [];
  const bad = denseOnly.find((l) => l >= raw.num_hidden_layers);
  if (bad !== undefined) {
    throw new Error(
      `${file}: mlp_only_layers names layer ${bad}, but the model has ${raw.num_hidden_layers}`,
    );
  }
  const sparseLayers = Array.from(
    { length: raw.num_hidden_layers },
    (_, l) => !denseOnly.includes(l) && numExperts > 0 && (l + 1) % step === 0,
  );
  if (!sparseLayers.includes(true)) return undefined;
  checkTopK(numExperts, topK, file);
  return {
    numExperts,
    topK,
    expertIntermediateSize: raw.moe_intermediate_size ?? 768,
    normalizeTopK: raw.norm_topk_prob ?? false,
    sparseLayers,
  };
}

/**
 * OLMo 3 (transformers' Olmo3Config): OLMo 2's layers, three of every four attending within
 * sliding_window (layer_types, by default every fourth layer full), the window layers rotating
 * with plain RoPE of the model's base (rope_parameters' sliding_attention base where given, set by
 * the caller) and the full layers with the model's scaling (YaRN in the released checkpoints).
 */
function olmo3Windows(
  raw: RawConfig,
  file: string,
): Pick<ModelConfig, "slidingWindow" | "slidingLayers" | "localRopeTheta"> {
  const n = raw.num_hidden_layers;
  const types =
    raw.layer_types ??
    Array.from({ length: n }, (_, l) => ((l + 1) % 4 === 0 ? "full_attention" : "sliding_attention"));
  if (types.length !== n) throw new Error(`${file}: layer_types has ${types.length} entries for ${n} layers`);
  const bad = types.findIndex((t) => t !== "full_attention" && t !== "sliding_attention");
  if (bad >= 0)
    throw new Error(
      `${file}: layer_types[${bad}] = "${types[bad]}" is not supported (full_attention or sliding_attention)`,
    );
  const sliding = types.map((t) => t === "sliding_attention");
  if (!sliding.includes(true)) return { slidingWindow: null };
  return {
    slidingWindow: raw.sliding_window ?? 4096,
    slidingLayers: sliding,
    localRopeTheta: raw.rope_theta ?? raw.rope_parameters?.rope_theta ?? 500000,
  };
}

/**
 * gpt-oss (transformers' GptOssConfig): q/k/v/o biases (attention_bias), a learned sink logit per
 * head, layer_types alternating window (sliding_window keys, from layer 0) and full attention, and
 * every layer a mixture of num_local_experts biased experts under a biased router: top
 * num_experts_per_tok by logit, weighted by the softmax over the chosen (Mixtral's renormalised
 * top-k), each expert a clamped SwiGLU (alpha 1.702, limit swiglu_limit).
 */
function gptOssFeatures(
  raw: RawConfig,
  file: string,
): Pick<
  ModelConfig,
  "attentionBias" | "outputBias" | "attnSinks" | "moe" | "slidingWindow" | "slidingLayers"
> {
  const n = raw.num_hidden_layers;
  const types =
    raw.layer_types ??
    Array.from({ length: n }, (_, l) => (l % 2 === 0 ? "sliding_attention" : "full_attention"));
  if (types.length !== n) throw new Error(`${file}: layer_types has ${types.length} entries for ${n} layers`);
  const bad = types.findIndex((t) => t !== "full_attention" && t !== "sliding_attention");
  if (bad >= 0)
    throw new Error(
      `${file}: layer_types[${bad}] = "${types[bad]}" is not supported (full_attention or sliding_attention)`,
    );
  const bias = raw.attention_bias ?? true;
  const numExperts = raw.num_local_experts ?? raw.num_experts ?? 128;
  const topK = raw.num_experts_per_tok ?? 4;
  if (numExperts === 0) throw new Error(`${file}: num_local_experts must be positive`);
  checkTopK(numExperts, topK, file);
  const sliding = types.map((t) => t === "sliding_attention");
  return {
    attentionBias: bias,
    outputBias: bias,
    attnSinks: true,
    ...(sliding.includes(true)
      ? { slidingWindow: raw.sliding_window ?? 128, slidingLayers: sliding }
      : { slidingWindow: null }),
    moe: {
      numExperts,
      topK,
      expertIntermediateSize: raw.intermediate_size,
      normalizeTopK: true,
      sparseLayers: Array.from({ length: n }, () => true),
      routerBias: true,
      expertBias: true,
      swigluClamp: { alpha: raw.swiglu_alpha ?? 1.702, limit: raw.swiglu_limit ?? 7 },
    },
  };
}

/**
 * OLMoE (transformers' OlmoeConfig): Llama's pre-norm layers with q and k normed over their whole
 * projections (OLMo 2's q/k norms) and every layer a mixture of num_experts SwiGLU experts of
 * intermediate_size, top num_experts_per_tok by softmax probability, renormalised only with
 * norm_topk_prob (False in the released models). clip_qkv clamps q/k/v, which the graph does not.
 */
function olmoeFeatures(raw: RawConfig, file: string): Pick<ModelConfig, "qkNorm" | "qkNormFull" | "moe"> {
  if (raw.clip_qkv != null)
    throw new Error(`${file}: olmoe clip_qkv ${raw.clip_qkv} (q/k/v clamped) is not supported`);
  const numExperts = raw.num_experts ?? 64;
  const topK = raw.num_experts_per_tok ?? 8;
  checkTopK(numExperts, topK, file);
  return {
    qkNorm: true,
    qkNormFull: true,
    moe: {
      numExperts,
      topK,
      expertIntermediateSize: raw.intermediate_size,
      normalizeTopK: raw.norm_topk_prob ?? false,
      sparseLayers: Array.from({ length: raw.num_hidden_layers }, () => true),
    },
  };
}
