import type { MoeRouteArgs } from "./backend.js";
import { checkCount, checkLength } from "./checks.js";

/**
 * The mixture-of-experts kernels in plain TypeScript (the reference backend's, and the oracle the
 * native ones are tested against). Nothing is allocated per call: routing keeps each slot's
 * expert in slotRow until the rows are assigned, and uses expertStart as its own cursor.
 */

export function checkRouteArgs(method: string, a: MoeRouteArgs): void {
  checkCount(method, "nTokens", a.nTokens);
  if (!Number.isInteger(a.nExperts) || a.nExperts < 1)
    throw new TypeError(`${method}: nExperts must be a positive integer, got ${a.nExperts}`);
  if (!Number.isInteger(a.topK) || a.topK < 1 || a.topK > a.nExperts)
    throw new TypeError(`${method}: topK must be an integer in [1, ${a.nExperts}], got ${a.topK}`);
  const pairs = a.nTokens * a.topK;
  checkLength(method, "logits", a.logits, a.nTokens * a.nExperts);
  checkLength(method, "slotWeight", a.slotWeight, pairs);
  checkLength(method, "slotRow", a.slotRow, pairs);
  checkLength(method, "rowToken", a.rowToken, pairs);
  checkLength(method, "expertStart", a.expertStart, a.nExperts + 1);
  if (a.selectionBias) checkLength(method, "selectionBias", a.selectionBias, a.nExperts);
  if (a.scale !== undefined && !Number.isFinite(a.scale))
    throw new RangeError(`${method}: scale must be finite, got ${a.scale}`);
}

export function moeRouteReference(a: MoeRouteArgs): void {
  checkRouteArgs("moeRoute", a);
  const { logits, nTokens, nExperts: E, topK: k, slotWeight, slotRow, rowToken, expertStart } = a;
  expertStart.fill(0, 0, E + 1);
  for (let t = 0; t < nTokens; t++) {
    if (a.selectionBias || a.sigmoid) {
      biasedChoice(a, t);
      continue;
    }
    const base = t * E;
    // Selection of the k largest, one at a time: a strict > keeps the lower index on a tie.
    for (let j = 0; j < k; j++) {
      let best = -1;
      for (let e = 0; e < E; e++) {
        if (chosenBefore(slotRow, t * k, j, e)) continue;
        if (best === -1 || logits[base + e]! > logits[base + best]!) best = e;
      }
      slotRow[t * k + j] = best;
      expertStart[best + 1]!++;
    }
    const top = logits[base + slotRow[t * k]!]!;
    let z = 0;
    if (a.normalizeTopK) for (let j = 0; j < k; j++) z += Math.exp(logits[base + slotRow[t * k + j]!]! - top);
    else for (let e = 0; e < E; e++) z += Math.exp(logits[base + e]! - top);
    const scale = a.scale ?? 1;
    for (let j = 0; j < k; j++)
      slotWeight[t * k + j] = (Math.exp(logits[base + slotRow[t * k + j]!]! - top) / z) * scale;
  }
  for (let e = 0; e < E; e++) expertStart[e + 1]! += expertStart[e]!;
  // Assign rows with expertStart[e] as e's cursor; afterwards it holds e's end, i.e. e+1's start.
  for (let s = 0; s < nTokens * k; s++) {
    const row = expertStart[slotRow[s]!]!++;
    slotRow[s] = row;
    rowToken[row] = Math.floor(s / k);
  }
  for (let e = E; e > 0; e--) expertStart[e] = expertStart[e - 1]!;
  expertStart[0] = 0;
}

/**
 * Token t's experts by score + selectionBias (or the score alone), their weights the scores (over
 * all experts, or renormalised over the chosen) times scale. A score is the softmax probability, or
 * with sigmoid the logit's sigmoid. Exponentials are recomputed rather than kept, so routing needs
 * no scratch.
 */
function biasedChoice(a: MoeRouteArgs, t: number): void {
  const { logits, nExperts: E, topK: k, slotWeight, slotRow, expertStart } = a;
  const bias = a.selectionBias;
  const base = t * E;
  let top = logits[base]!;
  for (let e = 1; e < E; e++) top = Math.max(top, logits[base + e]!);
  let z = 0;
  if (!a.sigmoid) for (let e = 0; e < E; e++) z += Math.exp(logits[base + e]! - top);
  const prob = a.sigmoid
    ? (e: number) => 1 / (1 + Math.exp(-logits[base + e]!))
    : (e: number) => Math.exp(logits[base + e]! - top) / z;
  for (let j = 0; j < k; j++) {
    let best = -1;
    let bestKey = 0;
    for (let e = 0; e < E; e++) {
      if (chosenBefore(slotRow, t * k, j, e)) continue;
      const key = prob(e) + (bias ? bias[e]! : 0);
      if (best === -1 || key > bestKey) [best, bestKey] = [e, key];
    }
    slotRow[t * k + j] = best;
    expertStart[best + 1]!++;
  }
  let sum = 0;
  for (let j = 0; j < k; j++) sum += prob(slotRow[t * k + j]!);
  const norm = a.normalizeTopK ? sum : 1;
  const scale = a.scale ?? 1;
  for (let j = 0; j < k; j++) slotWeight[t * k + j] = (prob(slotRow[t * k + j]!) / norm) * scale;
}

function chosenBefore(slotRow: Int32Array, first: number, j: number, e: number): boolean {
  for (let i = 0; i < j; i++) if (slotRow[first + i] === e) return true;
  return false;
}

export function gatherRowsReference(
  out: Float32Array,
  x: Float32Array,
  rows: Int32Array,
  nRows: number,
  dim: number,
): void {
  checkCount("gatherRows", "nRows", nRows);
  checkLength("gatherRows", "rows", rows, nRows);
  checkLength("gatherRows", "out", out, nRows * dim);
  for (let r = 0; r < nRows; r++) {
    const src = rows[r]!;
    if (src < 0 || (src + 1) * dim > x.length)
      throw new RangeError(`gatherRows: rows[${r}] = ${src} is outside x (${x.length / dim} rows)`);
    for (let i = 0; i < dim; i++) out[r * dim + i] = x[src * dim + i]!;
  }
}

export function moeCombineReference(
  out: Float32Array,
  y: Float32Array,
  slotRow: Int32Array,
  slotWeight: Float32Array,
  nTokens: number,
  topK: number,
  dim: number,
): void {
  checkCount("moeCombine", "nTokens", nTokens);
  checkLength("moeCombine", "slotRow", slotRow, nTokens * topK);
  checkLength("moeCombine", "slotWeight", slotWeight, nTokens * topK);
  checkLength("moeCombine", "out", out, nTokens * dim);
  for (let t = 0; t < nTokens; t++) {
    for (let i = 0; i < dim; i++) out[t * dim + i] = 0;
    for (let j = 0; j < topK; j++) {
      const row = slotRow[t * topK + j]!;
      if (row < 0 || (row + 1) * dim > y.length)
        throw new RangeError(`moeCombine: slotRow[${t * topK + j}] = ${row} is outside y`);
      const w = slotWeight[t * topK + j]!;
      for (let i = 0; i < dim; i++) out[t * dim + i] = out[t * dim + i]! + w * y[row * dim + i]!;
    }
  }
}
