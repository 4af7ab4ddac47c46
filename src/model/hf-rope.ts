import { z } from "zod";
import { type RopeScaling, yarnMscale } from "./config.js";

/**
 * config.json's `rope_scaling` (or transformers ≥ 5's `rope_parameters`) → RopeScaling. A type
 * we do not implement, or one missing a field its math needs, is an error naming the field.
 */

const posInt = z.number().int().positive();

export const ropeScalingSchema = z
  .object({
    type: z.string().optional(),
    rope_type: z.string().optional(),
    rope_theta: z.number().positive().optional(),
    factor: z.number().positive().optional(),
    low_freq_factor: z.number().positive().optional(),
    high_freq_factor: z.number().positive().optional(),
    original_max_position_embeddings: posInt.optional(),
    short_factor: z.array(z.number().positive()).optional(),
    long_factor: z.array(z.number().positive()).optional(),
    attention_factor: z.number().positive().nullish(),
    beta_fast: z.number().positive().nullish(),
    beta_slow: z.number().positive().nullish(),
    mscale: z.number().nullish(),
    mscale_all_dim: z.number().nullish(),
    truncate: z.boolean().optional(),
    partial_rotary_factor: z.number().positive().optional(),
  })
  .nullish();

export type RawRopeScaling = z.output<typeof ropeScalingSchema>;

/** What the longrope rule needs from the rest of config.json. */
export interface RopeContext {
  readonly file: string;
  /** The dims of a head RoPE rotates: head_dim, or less with partial rotary embeddings. */
  readonly headDim: number;
  readonly maxPositionEmbeddings: number;
  /** Phi-3's top-level original_max_position_embeddings (the pretraining context). */
  readonly originalMaxPositionEmbeddings: number | undefined;
}

export function parseRopeScaling(rs: RawRopeScaling, ctx: RopeContext): RopeScaling | null {
  if (rs == null) return null;
  const { file } = ctx;
  const kind = rs.rope_type ?? rs.type ?? "default";
  const need = <T>(value: T | undefined, key: string): T => {
    if (value === undefined) throw new Error(`${file}: rope_scaling of type "${kind}" needs "${key}"`);
    return value;
  };
  switch (kind) {
    case "default":
      return null;
    case "linear":
      return { type: "linear", factor: need(rs.factor, "factor") };
    case "llama3":
      return {
        type: "llama3",
        factor: need(rs.factor, "factor"),
        lowFreqFactor: need(rs.low_freq_factor, "low_freq_factor"),
        highFreqFactor: need(rs.high_freq_factor, "high_freq_factor"),
        originalMaxPositionEmbeddings: need(
          rs.original_max_position_embeddings,
          "original_max_position_embeddings",
        ),
      };
    case "longrope":
      return longRope(rs, ctx, need);
    case "yarn":
      return yarn(rs, ctx);
    default:
      throw new Error(
        `${file}: rope_scaling type "${kind}" is not supported (supported: llama3, linear, longrope, yarn)`,
      );
  }
}

/**
 * Phi-3's LongRoPE, as transformers computes it: when config.json has a top-level
 * original_max_position_embeddings the scale is max_position_embeddings / that (rope_scaling's
 * `factor` is then unused); the attention factor, unless given, is
 * √(1 + ln(scale) / ln(original)) for a scale above 1, else 1.
 */
function longRope(
  rs: NonNullable<RawRopeScaling>,
  ctx: RopeContext,
  need: <T>(value: T | undefined, key: string) => T,
): RopeScaling {
  const half = ctx.headDim / 2;
  const shortFactor = need(rs.short_factor, "short_factor");
  const longFactor = need(rs.long_factor, "long_factor");
  for (const [key, list] of [
    ["short_factor", shortFactor],
    ["long_factor", longFactor],
  ] as const) {
    if (list.length !== half) {
      throw new Error(
        `${ctx.file}: rope_scaling.${key} has ${list.length} entries, but ${ctx.headDim} rotated dims a head need ${half}`,
      );
    }
  }
  const original = ctx.originalMaxPositionEmbeddings ?? rs.original_max_position_embeddings;
  let factor: number;
  let originalMax: number;
  if (original !== undefined) {
    originalMax = original;
    factor = ctx.maxPositionEmbeddings / original;
  } else {
    originalMax = ctx.maxPositionEmbeddings;
    factor = need(rs.factor, "factor");
  }
  const attentionFactor =
    rs.attention_factor ?? (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(originalMax)));
  return {
    type: "longrope",
    shortFactor,
    longFactor,
    originalMaxPositionEmbeddings: originalMax,
    attentionFactor,
  };
}

/**
 * YaRN as transformers computes it, with `factor` as written (transformers 5, vLLM and llama.cpp
 * take it so; some 4.x releases replaced it by max_position_embeddings / original when both are
 * given), or that ratio where no factor is written. The original context defaults to
 * max_position_embeddings; beta_fast and beta_slow to 32 and 1; the attention factor, unless
 * given, is mscale(factor, mscale) / mscale(factor, mscale_all_dim) where both are set, else
 * mscale(factor) = 0.1 · ln(factor) + 1.
 */
function yarn(rs: NonNullable<RawRopeScaling>, ctx: RopeContext): RopeScaling {
  const original = rs.original_max_position_embeddings ?? ctx.maxPositionEmbeddings;
  const factor = rs.factor ?? ctx.maxPositionEmbeddings / original;
  if (!(factor > 0)) throw new Error(`${ctx.file}: rope_scaling of type "yarn" needs a positive "factor"`);
  const betaFast = rs.beta_fast ?? 32;
  const betaSlow = rs.beta_slow ?? 1;
  if (!(betaFast > betaSlow))
    throw new Error(
      `${ctx.file}: rope_scaling beta_fast (${betaFast}) must exceed beta_slow (${betaSlow}): the ramp runs from the fast-turning frequencies to the slow ones`,
    );
  const attentionFactor =
    rs.attention_factor ??
    (rs.mscale && rs.mscale_all_dim
      ? yarnMscale(factor, rs.mscale) / yarnMscale(factor, rs.mscale_all_dim)
      : yarnMscale(factor));
  return {
    type: "yarn",
    factor,
    originalMaxPositionEmbeddings: original,
    betaFast,
    betaSlow,
    attentionFactor,
    truncate: rs.truncate ?? true,
  };
}

/**
 * A config.json whose rope_parameters are given per layer type (transformers 5's form for models
 * with window layers: {"sliding_attention": {...}, "full_attention": {...}}) as the flat form the
 * schema reads: the full layers' parameters as rope_parameters (their scaling is the model's), and
 * the window layers' base apart. Window layers that scale their own RoPE are refused by name.
 */
export function flattenLayerTypeRope(json: object, file: string): { flat: object; localTheta?: number } {
  const rp = (json as { rope_parameters?: unknown }).rope_parameters;
  if (!rp || typeof rp !== "object" || !("full_attention" in rp || "sliding_attention" in rp))
    return { flat: json };
  const { full_attention: full, sliding_attention: sliding } = rp as Record<
    string,
    Record<string, unknown> | undefined
  >;
  const kind = sliding?.rope_type ?? sliding?.type ?? "default";
  if (kind !== "default")
    throw new Error(
      `${file}: rope_parameters.sliding_attention of type "${String(kind)}" is not supported (the window layers' RoPE unscaled is)`,
    );
  const theta = sliding?.rope_theta;
  return {
    flat: { ...json, rope_parameters: full ?? null },
    ...(typeof theta === "number" ? { localTheta: theta } : {}),
  };
}
