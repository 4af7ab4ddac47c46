import type { KernelBackend } from "../kernels/backend.js";
import { BUCKET_SHIFT, samplingRows } from "../kernels/sampling-rows.js";
import type { LogitBias, SamplingParams, TokenLogprob } from "./api.js";
import type { Rng } from "./rng.js";

/** The row kernels a sampler runs (KernelBackend's; kernels/sampling-rows.ts has them in TypeScript). */
export type SamplingKernels = Pick<
  KernelBackend,
  "rowSoftmax" | "argmax" | "drawIndex" | "topK" | "nucleusCandidates"
>;

/** Per-sequence state the sampler reads: its parameters, RNG and token history for penalties. */
export interface SamplingState {
  readonly params: SamplingParams;
  readonly rng: Rng;
  /** Tokens of the prompt (for the repetition penalty). */
  readonly promptTokens: readonly number[];
  /** Occurrences of each generated token (for frequency/presence/repetition penalties). */
  readonly outputCounts: Map<number, number>;
}

/**
 * Turns one row of logits into a token: logit_bias → penalties → temperature → top-k → softmax →
 * min-p → top-p → draw. Scratch buffers are sized to the vocabulary once; a greedy step allocates
 * nothing.
 * Logprobs are reported from the model's raw distribution (before logit_bias, penalties and
 * temperature; the caller keeps a copy of the row): they describe what the model predicted, as
 * they did before logit_bias existed. OpenAI does not document whether its logprobs include the
 * bias, so this is a choice, not a match.
 */
export class Sampler {
  private readonly probs: Float32Array;
  /** The probabilities' float32 bits (same buffer): ordered as the values are, for non-negative floats. */
  private readonly probBits: Uint32Array;
  private readonly idx: Int32Array;
  private readonly promptSeen: Uint8Array;
  /** top-p's sort keys for its boundary bucket (probability descending, then token id). */
  private readonly sortKeys: Float64Array;
  /** top-p's candidates' positions (nucleusCandidates), and their mass per probability bucket. */
  private readonly positions: Int32Array;
  private readonly bucketMass = new Float64Array(1 << (31 - BUCKET_SHIFT));
  /** One float32 and its bits, to read a sort key's probability. */
  private readonly keyBits = new Uint32Array(1);
  private readonly keyProb = new Float32Array(this.keyBits.buffer);

  constructor(
    readonly vocabSize: number,
    /**
     * The row kernels: a kernel backend's (the native one's vector passes take a 128k-token row in
     * tens of µs, where the JavaScript loops took 1.8 ms), else the TypeScript ones.
     */
    private readonly kernels: SamplingKernels = samplingRows,
  ) {
    this.probs = new Float32Array(vocabSize);
    this.probBits = new Uint32Array(this.probs.buffer);
    this.idx = new Int32Array(vocabSize);
    this.promptSeen = new Uint8Array(vocabSize);
    this.sortKeys = new Float64Array(vocabSize);
    this.positions = new Int32Array(vocabSize);
  }

  /** Samples from logits[off .. off + vocab). May modify that row in place. */
  sample(logits: Float32Array, off: number, st: SamplingState): number {
    this.prepare(logits, off, st);
    return this.draw(logits, off, st);
  }

  /** logit_bias, then the penalties: what every draw of the row sees. */
  private prepare(logits: Float32Array, off: number, st: SamplingState): void {
    const p = st.params;
    if (p.logitBias !== null) applyLogitBias(logits, off, this.vocabSize, p.logitBias);
    this.applyPenalties(logits, off, st);
  }

  /**
   * Samples only tokens `allowed` accepts (a constrained reply, json-constraint.ts): the same draw
   * as sample's over the row with every refused token's logit at -∞. Drawn tokens are checked one
   * at a time, each refusal removing that token and drawing again (the same distribution as
   * masking first); after a few refusals (greedy's argmax is cheap, a sampled draw's filters over
   * the row are not) the whole vocabulary is checked once and masked. Returns -1 when no token is
   * allowed.
   */
  sampleAllowed(
    logits: Float32Array,
    off: number,
    st: SamplingState,
    allowed: (token: number) => boolean,
  ): number {
    const V = this.vocabSize;
    this.prepare(logits, off, st);
    const refusals = st.params.temperature <= 0 ? MAX_GREEDY_REFUSALS : MAX_SAMPLED_REFUSALS;
    for (let tries = 0; tries < refusals; tries++) {
      const t = this.draw(logits, off, st);
      if (logits[off + t] === Number.NEGATIVE_INFINITY) return -1;
      if (allowed(t)) return t;
      logits[off + t] = Number.NEGATIVE_INFINITY;
    }
    let any = false;
    for (let t = 0; t < V; t++) {
      if (logits[off + t] === Number.NEGATIVE_INFINITY) continue;
      if (allowed(t)) any = true;
      else logits[off + t] = Number.NEGATIVE_INFINITY;
    }
    return any ? this.draw(logits, off, st) : -1;
  }

  /** The draw itself, over logits already biased and penalised: greedy, or the filters then a sample. */
  private draw(logits: Float32Array, off: number, st: SamplingState): number {
    const V = this.vocabSize;
    const p = st.params;
    if (p.temperature <= 0) return this.kernels.argmax(logits, off, V);
    const inv = 1 / p.temperature;
    // Candidates: top-k, kept in idx[0..n) with their softmax (with temperature) in probs.
    if (p.topK > 0 && p.topK < V) return this.filterAndDraw(this.topKSoftmax(logits, off, p.topK, inv), st);
    // Or every token: probs[j] is token j's probability.
    this.kernels.rowSoftmax(this.probs, logits, off, V, inv);
    if (p.minP > 0) {
      for (let i = 0; i < V; i++) this.idx[i] = i;
      return this.filterAndDraw(V, st);
    }
    if (p.topP >= 1) return this.kernels.drawIndex(this.probs, V, st.rng.next());
    const n = this.topP(V, p.topP, true);
    return this.idx[this.kernels.drawIndex(this.probs, n, st.rng.next())]!;
  }

  /**
   * The k highest-logit tokens the candidates, in idx[0..k) in token order, probs[j] their softmax.
   * Token order, not the heap's: a draw walks its candidates in their order, and the heap's moves
   * with differences in the last bits of the logits (a sequence batched with others), which would
   * send one seed to different tokens; token order keeps a draw where it lands.
   */
  private topKSoftmax(logits: Float32Array, off: number, k: number, inv: number): number {
    const n = this.kernels.topK(logits, off, this.vocabSize, k, this.idx);
    this.idx.subarray(0, n).sort();
    for (let j = 0; j < n; j++) this.probs[j] = logits[off + this.idx[j]!]!;
    this.kernels.rowSoftmax(this.probs, this.probs, 0, n, inv);
    return n;
  }

  /** min-p, then top-p over the n candidates, then the draw. */
  private filterAndDraw(candidates: number, st: SamplingState): number {
    const p = st.params;
    let n = candidates;
    // min-p: drop tokens less likely than minP × the most likely one.
    if (p.minP > 0) {
      let pmax = 0;
      for (let j = 0; j < n; j++) pmax = Math.max(pmax, this.probs[j]!);
      n = this.keepWhere(n, (j) => this.probs[j]! >= p.minP * pmax);
    }
    if (p.topP < 1) n = this.topP(n, p.topP, false);
    return this.idx[this.kernels.drawIndex(this.probs, Math.max(1, n), st.rng.next())]!;
  }

  private applyPenalties(logits: Float32Array, off: number, st: SamplingState): void {
    const p = st.params;
    if (p.repetitionPenalty !== 1) {
      const rp = p.repetitionPenalty;
      const seen = this.promptSeen;
      const penalize = (t: number): void => {
        if (seen[t]) return;
        seen[t] = 1;
        const v = logits[off + t]!;
        logits[off + t] = v > 0 ? v / rp : v * rp;
      };
      for (const t of st.promptTokens) penalize(t);
      for (const t of st.outputCounts.keys()) penalize(t);
      for (const t of st.promptTokens) seen[t] = 0;
      for (const t of st.outputCounts.keys()) seen[t] = 0;
    }
    if (p.frequencyPenalty !== 0 || p.presencePenalty !== 0) {
      for (const [t, c] of st.outputCounts)
        logits[off + t] = logits[off + t]! - p.frequencyPenalty * c - p.presencePenalty;
    }
  }

  /** Keeps candidates j with keep(j), compacting idx/probs; returns the new count (at least 1). */
  private keepWhere(n: number, keep: (j: number) => boolean): number {
    let w = 0;
    let best = 0;
    for (let j = 0; j < n; j++) {
      if (this.probs[j]! > this.probs[best]!) best = j;
      if (keep(j)) {
        this.idx[w] = this.idx[j]!;
        this.probs[w] = this.probs[j]!;
        w++;
      }
    }
    if (w === 0) {
      this.idx[0] = this.idx[best]!;
      this.probs[0] = this.probs[best]!;
      w = 1;
    }
    return w;
  }

  /**
   * Nucleus: the smallest set of most likely candidates whose mass reaches topP, kept in
   * idx/probs[0..m) in the candidates' order (returns m). Its members are those of the probability
   * buckets (float bits >> 20) above the one where the mass from the top reaches topP, then that
   * bucket's most likely members (ties: lower token id first) until the mass reaches topP: only the
   * boundary bucket is sorted. The candidates come from the kernels' nucleusCandidates. With
   * `identity`, candidate j is token j and idx is not read. A 128k-token row whose nucleus held tens
   * of thousands of tokens took 40 ms when every candidate was sorted by a comparator.
   */
  private topP(n: number, topP: number, identity: boolean): number {
    const probs = this.probs;
    const idx = this.idx;
    const bits = this.probBits;
    const at = this.positions;
    const m = this.kernels.nucleusCandidates(probs, n, topP, at);
    const mass = this.bucketMass;
    mass.fill(0);
    // Compacted in place (at[c] >= c, so no position is read after it is written), mass summed per bucket.
    for (let c = 0; c < m; c++) {
      const j = at[c]!;
      idx[c] = identity ? j : idx[j]!;
      probs[c] = probs[j]!;
      const b = bits[c]! >>> BUCKET_SHIFT;
      mass[b] = mass[b]! + probs[c]!;
    }
    let boundary = mass.length - 1;
    let above = 0;
    while (boundary > 0 && above + mass[boundary]! < topP) above += mass[boundary--]!;
    if (above + mass[boundary]! < topP) return m; // rounding: every candidate
    if (this.vocabSize > ID_SPAN) return this.sortedPrefix(m, topP);
    // The boundary bucket's members as sort keys (probability descending, then token id); the mass
    // above it summed. Walking the sorted keys finds the last member the nucleus takes.
    const keys = this.sortKeys;
    let edge = 0;
    let cum = 0;
    for (let c = 0; c < m; c++) {
      const b = bits[c]! >>> BUCKET_SHIFT;
      if (b > boundary) cum += probs[c]!;
      else if (b === boundary) keys[edge++] = this.sortKey(c);
    }
    keys.subarray(0, edge).sort();
    let last = edge - 1;
    for (let e = 0; e < edge; e++) {
      const k = keys[e]!;
      cum += this.probOfKey(k);
      if (cum >= topP) {
        last = e;
        break;
      }
    }
    // The nucleus in the candidates' own order (token order): a draw walks it in an order that the
    // last bits of the logits do not move, so one seed lands on the same token.
    const lastKey = edge > 0 ? keys[last]! : Number.NEGATIVE_INFINITY;
    let w = 0;
    for (let c = 0; c < m; c++) {
      const b = bits[c]! >>> BUCKET_SHIFT;
      if (b > boundary || (b === boundary && this.sortKey(c) <= lastKey)) {
        idx[w] = idx[c]!;
        probs[w++] = probs[c]!;
      }
    }
    return w;
  }

  /** Candidate c's sort key: probability descending, then token id. */
  private sortKey(c: number): number {
    return (MAX_PROB_BITS - this.probBits[c]!) * ID_SPAN + this.idx[c]!;
  }

  /** The probability a sort key holds (its bits above the id). */
  private probOfKey(key: number): number {
    const bits = MAX_PROB_BITS - Math.floor(key / ID_SPAN);
    this.keyBits[0] = bits;
    return this.keyProb[0]!;
  }

  /** The nucleus by sorting all m candidates (sortByProb) and walking them: vocabularies past the packed keys. */
  private sortedPrefix(m: number, topP: number): number {
    this.sortByProb(m);
    let cum = 0;
    for (let j = 0; j < m; j++) {
      cum += this.probs[j]!;
      if (cum >= topP) return j + 1;
    }
    return m;
  }

  /** Sorts idx/probs[0..m) by probability, descending (ties: lower token id first), by a comparator. */
  private sortByProb(m: number): void {
    const idx = this.idx;
    const probs = this.probs;
    const order = Array.from({ length: m }, (_, j) => j);
    order.sort((a, b) => probs[b]! - probs[a]! || idx[a]! - idx[b]!);
    const ids = order.map((j) => idx[j]!);
    const ps = order.map((j) => probs[j]!);
    idx.set(ids);
    probs.set(ps);
  }

  /** Log-probability of `token` and the `topN` most likely alternatives, from raw logits. */
  logprobs(logits: Float32Array, off: number, token: number, topN: number): TokenLogprob {
    const V = this.vocabSize;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < V; i++) max = Math.max(max, logits[off + i]!);
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(logits[off + i]! - max);
    const lse = max + Math.log(sum);
    const top: { tokenId: number; logprob: number }[] = [];
    if (topN > 0) {
      const k = this.kernels.topK(logits, off, V, Math.min(topN, V), this.idx);
      for (let j = 0; j < k; j++)
        top.push({ tokenId: this.idx[j]!, logprob: logits[off + this.idx[j]!]! - lse });
      top.sort((a, b) => b.logprob - a.logprob || a.tokenId - b.tokenId);
    }
    return { tokenId: token, logprob: logits[off + token]! - lse, top };
  }
}

/** Sort keys: (MAX_PROB_BITS - a probability's bits) * ID_SPAN + token id, exact in a double (below 2^51). */
const MAX_PROB_BITS = 0x7fffffff;
const ID_SPAN = 1 << 20;

/**
 * Drawn tokens a constrained sample refuses one by one before it checks the whole vocabulary: a
 * greedy draw is one argmax, a sampled one its filters (top-k, top-p) over the row again.
 */
const MAX_GREEDY_REFUSALS = 4;
const MAX_SAMPLED_REFUSALS = 2;

/**
 * Adds each biased token's bias to its logit, in place: a loop over the request's (at most 300)
 * typed-array entries, so nothing is allocated per token. It comes first, as in vLLM, so that
 * greedy decoding and every filter see the biased logits (±100 bans or all but forces a token).
 * Ids outside the row are skipped rather than written into the next sequence's row; requests
 * are checked against the vocabulary before they get here.
 */
export function applyLogitBias(logits: Float32Array, off: number, vocabSize: number, bias: LogitBias): void {
  const ids = bias.ids;
  const biases = bias.biases;
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i]!;
    if (t >= 0 && t < vocabSize) logits[off + t] = logits[off + t]! + biases[i]!;
  }
}
