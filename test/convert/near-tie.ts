import assert from "node:assert/strict";
import type { LoadedModel } from "../../src/model/types.js";
import { referenceLogits } from "../helpers/reference-forward.js";

/**
 * Two greedy continuations of `ids` agree, or first differ where the float model's logits of the
 * two tokens are closer than twice the largest change quantization makes to any logit there
 * (float64 forward passes of the float and the quantized weights): a near tie that either side's
 * rounding may break either way.
 */
export function agreeOrNearTie(
  what: string,
  float: LoadedModel,
  quant: LoadedModel,
  ids: number[],
  a: number[],
  b: number[],
) {
  const at = a.findIndex((t, i) => t !== b[i]);
  if (at < 0) return;
  const prefix = [...ids, ...a.slice(0, at)];
  const lf = referenceLogits(float.config, float.weights, prefix).at(-1)!;
  const lq = referenceLogits(quant.config, quant.weights, prefix).at(-1)!;
  let moved = 0;
  for (let i = 0; i < lf.length; i++) moved = Math.max(moved, Math.abs(lq[i]! - lf[i]!));
  const gap = Math.abs(lf[a[at]!]! - lf[b[at]!]!);
  assert.ok(gap <= 2 * moved, `${what}: step ${at} (${a[at]} vs ${b[at]}): float gap ${gap} > 2 × ${moved}`);
}
