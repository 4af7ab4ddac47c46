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

/**
 * Two greedy continuations of `ids` on the same float weights (ours and llama.cpp's) agree, or
 * first differ at a tie: where the float64 reference's logits of the two tokens are within `tol`
 * of that step's logit range, closer than the two sides' float32 roundings (llama.cpp's GELU, for
 * one, reads its input as f16) can be trusted to order.
 */
export function agreeOrFloatTie(
  what: string,
  model: LoadedModel,
  ids: readonly number[],
  a: readonly number[],
  b: readonly number[],
  tol = 1e-4,
): void {
  assert.equal(a.length, b.length, `${what}: ${a.length} vs ${b.length} tokens`);
  const at = a.findIndex((t, i) => t !== b[i]);
  if (at < 0) return;
  const logits = referenceLogits(model.config, model.weights, [...ids, ...a.slice(0, at)]).at(-1)!;
  let hi = Number.NEGATIVE_INFINITY;
  let lo = Number.POSITIVE_INFINITY;
  for (const v of logits) {
    hi = Math.max(hi, v);
    lo = Math.min(lo, v);
  }
  const gap = Math.abs(logits[a[at]!]! - logits[b[at]!]!);
  assert.ok(
    gap <= tol * (hi - lo),
    `${what}: step ${at} (${a[at]} vs ${b[at]}): reference gap ${gap} > ${tol} × range ${hi - lo}`,
  );
}
