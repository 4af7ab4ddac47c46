import type { AttentionStep } from "./service.js";

/**
 * The sequences of a step that one owner serves (an attention worker under request partitioning,
 * the decode instance's own cache, a prefill instance), as a step of their own. `rows[i]` is the
 * row of the parent step that token i came from, for gathering inputs and scattering outputs.
 * Preallocated at the largest step; refilled every step.
 */
export class SubStep implements AttentionStep {
  microBatch = 0;
  nTokens = 0;
  nSeqs = 0;
  readonly seqIds: Int32Array;
  readonly seqStart: Int32Array;
  readonly positions: Int32Array;
  /** [nTokens] parent-step row of each token. */
  readonly rows: Int32Array;
  /** [nTokens] token ids, when the parent step carries them (model steps do; attention steps not). */
  readonly tokens: Int32Array;

  constructor(maxTokens: number, maxSeqs: number) {
    this.seqIds = new Int32Array(maxSeqs);
    this.seqStart = new Int32Array(maxSeqs + 1);
    this.positions = new Int32Array(maxTokens);
    this.rows = new Int32Array(maxTokens);
    this.tokens = new Int32Array(maxTokens);
  }

  reset(microBatch: number): void {
    this.microBatch = microBatch;
    this.nTokens = 0;
    this.nSeqs = 0;
    this.seqStart[0] = 0;
  }

  /** Appends sequence `s` of `parent` (all its rows, in order). */
  addSeq(parent: AttentionStep & { readonly tokens?: Int32Array }, s: number): void {
    this.seqIds[this.nSeqs] = parent.seqIds[s]!;
    const tokens = parent.tokens;
    for (let t = parent.seqStart[s]!; t < parent.seqStart[s + 1]!; t++) {
      this.rows[this.nTokens] = t;
      this.positions[this.nTokens] = parent.positions[t]!;
      if (tokens) this.tokens[this.nTokens] = tokens[t]!;
      this.nTokens++;
    }
    this.seqStart[++this.nSeqs] = this.nTokens;
  }
}

/** A step's sequence arrays, as another holder of them (a model step, a prefill batch) has them. */
export interface SeqArrays {
  nSeqs: number;
  nTokens: number;
  readonly seqIds: Int32Array;
  readonly seqStart: Int32Array;
  readonly positions: Int32Array;
  readonly tokens: Int32Array;
}

/** Copies a part's sequences, positions and tokens into another holder's arrays. */
export function copySeqs(dst: SeqArrays, src: Readonly<SeqArrays>): void {
  dst.nSeqs = src.nSeqs;
  dst.nTokens = src.nTokens;
  for (let s = 0; s < src.nSeqs; s++) dst.seqIds[s] = src.seqIds[s]!;
  for (let s = 0; s <= src.nSeqs; s++) dst.seqStart[s] = src.seqStart[s]!;
  for (let t = 0; t < src.nTokens; t++) {
    dst.positions[t] = src.positions[t]!;
    dst.tokens[t] = src.tokens[t]!;
  }
}

/** Which owner serves a sequence: an index into the parts, or -1 for none of them. */
export type OwnerOf = (seqId: number) => number;

/**
 * Routes every sequence of `step` to the part its owner names (the one routing rule every
 * partitioned service shares); sequences whose owner is -1 go nowhere.
 */
export function splitStep(
  step: AttentionStep & { readonly tokens?: Int32Array },
  ownerOf: OwnerOf,
  parts: readonly SubStep[],
): void {
  for (const p of parts) p.reset(step.microBatch);
  for (let s = 0; s < step.nSeqs; s++) {
    const o = ownerOf(step.seqIds[s]!);
    if (o >= 0) parts[o]!.addSeq(step, s);
  }
}

/** dst[r, 0..w) = src[rows[r], off..off+w) for r < n. */
export function gatherRows(
  dst: Float32Array,
  src: Float32Array,
  rows: Int32Array,
  n: number,
  srcWidth: number,
  off: number,
  w: number,
): void {
  // Plain loops: a subarray per row would allocate a view per token on the hot path.
  for (let r = 0; r < n; r++) {
    const s = rows[r]! * srcWidth + off;
    const d = r * w;
    for (let i = 0; i < w; i++) dst[d + i] = src[s + i]!;
  }
}

/** dst[rows[r], off..off+w) = src[r, 0..w) for r < n. */
export function scatterRows(
  dst: Float32Array,
  src: Float32Array,
  rows: Int32Array,
  n: number,
  dstWidth: number,
  off: number,
  w: number,
): void {
  for (let r = 0; r < n; r++) {
    const d = rows[r]! * dstWidth + off;
    const s = r * w;
    for (let i = 0; i < w; i++) dst[d + i] = src[s + i]!;
  }
}
