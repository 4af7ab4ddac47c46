import type { LogitBias, SamplingParams, TokenLogprob } from "./api.js";
import type { Rng } from "./rng.js";

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
  private readonly idx: Int32Array;
  private readonly promptSeen: Uint8Array;

  constructor(readonly vocabSize: number) {
    this.probs = new Float32Array(vocabSize);
    this.idx = new Int32Array(vocabSize);
    this.promptSeen = new Uint8Array(vocabSize);
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
    if (p.temperature <= 0) return argmax(logits, off, V);

    const inv = 1 / p.temperature;
    // Candidates: top-k (or everything), kept in idx[0..n).
    let n: number;
    if (p.topK > 0 && p.topK < V) n = this.topK(logits, off, p.topK);
    else {
      for (let i = 0; i < V; i++) this.idx[i] = i;
      n = V;
    }
    // Softmax over candidates (with temperature).
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < n; j++) max = Math.max(max, logits[off + this.idx[j]!]!);
    let sum = 0;
    for (let j = 0; j < n; j++) {
      const e = Math.exp((logits[off + this.idx[j]!]! - max) * inv);
      this.probs[j] = e;
      sum += e;
    }
    for (let j = 0; j < n; j++) this.probs[j] = this.probs[j]! / sum;
    // min-p: drop tokens less likely than minP × the most likely one.
    if (p.minP > 0) {
      let pmax = 0;
      for (let j = 0; j < n; j++) pmax = Math.max(pmax, this.probs[j]!);
      n = this.keepWhere(n, (j) => this.probs[j]! >= p.minP * pmax);
    }
    if (p.topP < 1) n = this.topP(n, p.topP);
    let total = 0;
    for (let j = 0; j < n; j++) total += this.probs[j]!;
    let r = st.rng.next() * total;
    for (let j = 0; j < n; j++) {
      r -= this.probs[j]!;
      if (r < 0) return this.idx[j]!;
    }
    return this.idx[n - 1]!;
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

  /** Puts the k highest-logit token ids into idx[0..k) (unordered), via a min-heap. */
  private topK(logits: Float32Array, off: number, k: number): number {
    const idx = this.idx;
    const less = (a: number, b: number): boolean => {
      const la = logits[off + a]!;
      const lb = logits[off + b]!;
      return la < lb || (la === lb && a > b);
    };
    const siftDown = (i: number): void => {
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < k && less(idx[l]!, idx[m]!)) m = l;
        if (r < k && less(idx[r]!, idx[m]!)) m = r;
        if (m === i) return;
        const t = idx[i]!;
        idx[i] = idx[m]!;
        idx[m] = t;
        i = m;
      }
    };
    for (let i = 0; i < k; i++) idx[i] = i;
    for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(i);
    for (let t = k; t < this.vocabSize; t++) {
      if (less(idx[0]!, t)) {
        idx[0] = t;
        siftDown(0);
      }
    }
    return k;
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

  /** Nucleus: the smallest set of most likely candidates whose mass reaches topP. */
  private topP(n: number, topP: number): number {
    // Sort only the likely head when it already holds the nucleus; otherwise sort everything.
    let pmax = 0;
    for (let j = 0; j < n; j++) pmax = Math.max(pmax, this.probs[j]!);
    let m = this.keepHead(n, pmax * 1e-4);
    let mass = 0;
    for (let j = 0; j < m; j++) mass += this.probs[j]!;
    if (mass < topP) m = n;
    this.sortByProb(m);
    let cum = 0;
    for (let j = 0; j < m; j++) {
      cum += this.probs[j]!;
      if (cum >= topP) return j + 1;
    }
    return m;
  }

  /** Moves candidates with prob ≥ cut to the front (stable for the rest unneeded); returns their count. */
  private keepHead(n: number, cut: number): number {
    let w = 0;
    for (let j = 0; j < n; j++) {
      if (this.probs[j]! >= cut) {
        const ti = this.idx[w]!;
        const tp = this.probs[w]!;
        this.idx[w] = this.idx[j]!;
        this.probs[w] = this.probs[j]!;
        this.idx[j] = ti;
        this.probs[j] = tp;
        w++;
      }
    }
    return w;
  }

  /** Sorts idx/probs[0..m) by probability, descending (ties: lower token id first). */
  private sortByProb(m: number): void {
    const order = Array.from({ length: m }, (_, j) => j);
    order.sort((a, b) => this.probs[b]! - this.probs[a]! || this.idx[a]! - this.idx[b]!);
    const ids = order.map((j) => this.idx[j]!);
    const ps = order.map((j) => this.probs[j]!);
    for (let j = 0; j < m; j++) {
      this.idx[j] = ids[j]!;
      this.probs[j] = ps[j]!;
    }
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
      const k = this.topK(logits, off, Math.min(topN, V));
      for (let j = 0; j < k; j++)
        top.push({ tokenId: this.idx[j]!, logprob: logits[off + this.idx[j]!]! - lse });
      top.sort((a, b) => b.logprob - a.logprob || a.tokenId - b.tokenId);
    }
    return { tokenId: token, logprob: logits[off + token]! - lse, top };
  }
}

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

export function argmax(x: Float32Array, off: number, n: number): number {
  let best = 0;
  let bv = x[off]!;
  for (let i = 1; i < n; i++) {
    const v = x[off + i]!;
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  return best;
}
