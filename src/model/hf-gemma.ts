import type { Architecture, ModelConfig } from "./config.js";
import type { RawConfig } from "./hf-config.js";

/**
 * Gemma 2 and Gemma 3 (text) config.json fields → what sets their graph apart: GeGLU with the
 * tanh GELU, the (1 + w) RMSNorm, embeddings scaled by √hidden, norms after attention and FFN,
 * query_pre_attn_scalar as the softmax scale, soft-capping (attention scores and logits), window
 * layers interleaved with global ones, and Gemma 3's q/k norms and window layers' RoPE base.
 * Defaults are transformers' for a key left out; an explicit null turns a soft-cap off, as it
 * does there.
 */
export type GemmaFeatures = Pick<
  ModelConfig,
  | "slidingWindow"
  | "slidingLayers"
  | "qkNorm"
  | "normPlusOne"
  | "embedScale"
  | "embedScaleExact"
  | "postNorms"
  | "activation"
  | "attentionScale"
  | "attnSoftcap"
  | "finalSoftcap"
  | "localRopeTheta"
>;

type Gemma = Extract<Architecture, "gemma" | "gemma2" | "gemma3_text">;

const DEFAULTS: Record<Gemma, { attnSoftcap: number | null; finalSoftcap: number | null; pattern: number }> =
  {
    gemma: { attnSoftcap: null, finalSoftcap: null, pattern: 0 },
    gemma2: { attnSoftcap: 50, finalSoftcap: 30, pattern: 2 },
    gemma3_text: { attnSoftcap: null, finalSoftcap: null, pattern: 6 },
  };

export function gemmaFeatures(raw: RawConfig, arch: Gemma, file: string): GemmaFeatures {
  // Gemma 1 checkpoints say hidden_act "gelu", which transformers overrides with the tanh
  // approximation unless hidden_activation names another.
  const act =
    arch === "gemma"
      ? (raw.hidden_activation ?? "gelu_pytorch_tanh")
      : (raw.hidden_activation ?? raw.hidden_act ?? "gelu_pytorch_tanh");
  if (act !== "gelu_pytorch_tanh") {
    throw new Error(
      `${file}: hidden_activation "${act}" is not supported for ${arch} (only gelu_pytorch_tanh)`,
    );
  }
  if (raw.use_bidirectional_attention === true) {
    throw new Error(`${file}: use_bidirectional_attention=true (non-causal attention) is not supported`);
  }
  const d = DEFAULTS[arch];
  const softcap = (v: number | null | undefined, dflt: number | null) => (v === undefined ? dflt : v);
  const attnSoftcap = softcap(raw.attn_logit_softcapping, d.attnSoftcap);
  const finalSoftcap = softcap(raw.final_logit_softcapping, d.finalSoftcap);
  // Gemma 1 has no window layers (its sliding_window, if any, is unused).
  const sliding = arch === "gemma" ? [] : windowLayers(raw, arch, file, d.pattern);
  const any = sliding.includes(true);
  return {
    slidingWindow: any ? (raw.sliding_window ?? 4096) : null,
    ...(any ? { slidingLayers: sliding } : {}),
    ...(arch === "gemma3_text" ? { qkNorm: true, localRopeTheta: raw.rope_local_base_freq ?? 10000 } : {}),
    normPlusOne: true,
    embedScale: true,
    // Gemma 1 norms only before attention and the FFN, as Llama; its scores scale by head_dim^-½.
    ...(arch !== "gemma"
      ? { postNorms: true, attentionScale: (raw.query_pre_attn_scalar ?? 256) ** -0.5 }
      : {}),
    activation: "gelu_tanh",
    ...(attnSoftcap !== null ? { attnSoftcap } : {}),
    ...(finalSoftcap !== null ? { finalSoftcap } : {}),
  };
}

/**
 * Which layers attend within the window: `layer_types` when given, else Gemma 2's alternation
 * (even layers) or Gemma 3's sliding_window_pattern (every layer but each pattern-th).
 */
function windowLayers(raw: RawConfig, arch: Gemma, file: string, defaultPattern: number): boolean[] {
  const n = raw.num_hidden_layers;
  if (raw.layer_types != null) {
    if (raw.layer_types.length !== n) {
      throw new Error(`${file}: layer_types has ${raw.layer_types.length} entries for ${n} layers`);
    }
    return raw.layer_types.map((t, l) => {
      if (t === "sliding_attention") return true;
      if (t === "full_attention") return false;
      throw new Error(
        `${file}: layer_types[${l}] = "${t}" is not supported for ${arch} (sliding_attention or full_attention)`,
      );
    });
  }
  const pattern =
    arch === "gemma2"
      ? defaultPattern
      : (numericPattern(raw.sliding_window_pattern, file) ?? raw._sliding_window_pattern ?? defaultPattern);
  return Array.from({ length: n }, (_, l) => (l + 1) % pattern !== 0);
}

/**
 * transformers ≥ 5 writes Gemma 3's `rope_parameters` per layer type ({full_attention: …,
 * sliding_attention: …}); that form is refused by name rather than read as no scaling.
 */
export function refusePerLayerTypeRope(json: object, file: string): void {
  const rp = (json as { rope_parameters?: unknown }).rope_parameters;
  if (rp && typeof rp === "object" && ("full_attention" in rp || "sliding_attention" in rp)) {
    throw new Error(
      `${file}: rope_parameters given per layer type (full_attention / sliding_attention) is not supported; ` +
        "give rope_theta, rope_scaling and rope_local_base_freq",
    );
  }
}

/** Gemma 3's sliding_window_pattern is a period (EXAONE 4's may be letters, which Gemma's is not). */
function numericPattern(p: number | string | null | undefined, file: string): number | undefined {
  if (p == null) return undefined;
  if (typeof p !== "number")
    throw new Error(`${file}: sliding_window_pattern ${JSON.stringify(p)} must be a layer count`);
  return p;
}
