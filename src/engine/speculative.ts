import type { EngineStats } from "./api.js";
import { proposeDrafts } from "./ngram-drafts.js";
import type { Sequence } from "./sequence.js";

/** Speculative decoding's settings (SchedulerLimits.speculation). */
export interface SpeculationOptions {
  /** Draft tokens proposed at most per step for one decoding sequence. */
  readonly tokens: number;
  /**
   * Speculate only while at most this many sequences run: a draft's rows cost nearly nothing
   * while a step is bound by reading the weights (few sequences), and cost a full token's compute
   * once the batch is large enough to be bound by arithmetic.
   */
  readonly maxRunning: number;
}

/** The longest pause, in steps, of a sequence whose drafts keep missing (see Speculation.verified). */
const MAX_DRAFT_PAUSE = 16;

/** Defaults: 3 draft tokens while at most 4 sequences run. */
export const DEFAULT_SPECULATION: SpeculationOptions = { tokens: 3, maxRunning: 4 };

/**
 * Logit rows a step keeps for drafts beyond one per sequence: every draft of the most sequences
 * that speculate at once. A step's rows (and the executor's logits) are sized for them.
 */
export function draftRows(spec: SpeculationOptions | null | undefined, maxRunning: number): number {
  return spec ? spec.tokens * Math.min(spec.maxRunning, maxRunning) : 0;
}

/**
 * Speculative decoding by prompt lookup. The scheduler asks `draft` for each decoding sequence it
 * plans: the sequence's step then computes its last token and the proposed ones in one pass, with
 * a logit row for each, and the output processor keeps the proposals the model itself draws
 * (`verified`). A draft is checked by sampling each row as usual and comparing: with a proposal
 * that is a single token (no draft model's distribution), accepting it when the row's own draw
 * equals it, and otherwise keeping that draw, is exactly speculative sampling's rule (accept with
 * probability p(token); on refusal, a draw from p without that token), so replies are the ones the
 * model would give without speculation, greedy token for token.
 */
export class Speculation {
  /** Draft tokens proposed, and of them those the model drew too (over the engine's life). */
  draftTokens = 0;
  acceptedTokens = 0;
  /** Steps that carried a draft. */
  draftSteps = 0;

  constructor(
    readonly options: SpeculationOptions,
    /** Longest sequence served: a draft and the token after it stay within it. */
    private readonly maxContext = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * Proposes draft tokens for `seq`, a decoding sequence with one token to compute, into
   * `seq.draft`; returns how many (0: none, or speculation does not apply now). `room`: rows and
   * tokens the step can still give it; `running`: sequences running now.
   */
  draft(seq: Sequence, room: number, running: number): number {
    seq.draft.length = 0;
    if (running > this.options.maxRunning || !speculable(seq)) return 0;
    if (seq.draftWait > 0) {
      seq.draftWait--;
      return 0;
    }
    const p = seq.params;
    // Every proposal accepted plus the token after them must stay within max_tokens and the context.
    const limit = Math.min(
      seq.draftLimit > 0 ? seq.draftLimit : this.options.tokens,
      room,
      p.maxTokens - seq.output.length - 1,
      this.maxContext - seq.length - 1,
    );
    return proposeDrafts(seq, limit, seq.draft);
  }

  /**
   * `seq`'s step with `drafted` proposals was verified and `accepted` of them kept. Its next draft
   * is at most one longer than what this one kept: a sequence whose drafts miss costs one extra row
   * a step, one whose drafts hold grows back to the full length. Misses in a row also pause its
   * drafts, for 1, 3, 7 then 15 steps, so text the lookup keeps mispredicting costs at most an
   * extra row every 16 steps; a kept token ends the pause.
   */
  verified(seq: Sequence, drafted: number, accepted: number): void {
    this.draftTokens += drafted;
    this.acceptedTokens += accepted;
    this.draftSteps++;
    seq.draftLimit = Math.min(this.options.tokens, accepted + 1);
    seq.draftMisses = accepted === 0 ? seq.draftMisses + 1 : 0;
    seq.draftWait = Math.min(MAX_DRAFT_PAUSE, 2 ** (seq.draftMisses - 1)) - 1;
  }
}

/**
 * Whether a sequence's tokens may be proposed: a reply drawn freely. A structured reply or strict
 * tool calls are drawn under an automaton each token advances, which a draft would have to run
 * ahead of; they decode a token a step.
 */
function speculable(seq: Sequence): boolean {
  const p = seq.params;
  return p.responseFormat === "text" && p.toolCalls === null;
}

/** EngineStats.speculation: the counters, all 0 when speculation is off. */
export function speculationStats(s: Speculation | null): EngineStats["speculation"] {
  return {
    enabled: s !== null,
    draftTokens: s?.draftTokens ?? 0,
    acceptedTokens: s?.acceptedTokens ?? 0,
    draftSteps: s?.draftSteps ?? 0,
  };
}
