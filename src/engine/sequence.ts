import type { SamplingParams, TokenLogprob } from "./api.js";
import { Rng } from "./rng.js";
import type { SamplingState } from "./sampler.js";

export type SequenceStatus = "waiting" | "running" | "finished";

/**
 * One request's progress: the engine's only per-request state. Everything a lost attention
 * worker or a preemption needs to rebuild the KV (prompt + generated tokens) lives here.
 */
export class Sequence implements SamplingState {
  status: SequenceStatus = "waiting";
  /** Tokens whose KV is in the cache (prefix of prompt + output). */
  numComputed = 0;
  /** Prefix-cache keys of its leading full blocks, as far as made (engine/prefix-keys.ts). */
  readonly blockKeys: string[] = [];
  /** Leading blocks already in the prefix cache (attached from it, or published to it). */
  cachedBlocks = 0;
  /** Prompt tokens taken from the prefix cache when it was first scheduled. */
  cachedTokens = 0;
  readonly output: number[] = [];
  /**
   * Speculative decoding: tokens proposed after its last one for the step in flight (verified
   * when the step lands, then cleared); empty otherwise.
   */
  readonly draft: number[] = [];
  /** The longest draft it is proposed next (speculative.ts adapts it to what it kept); 0: the full length. */
  draftLimit = 0;
  /** Drafts that kept nothing, in a row; decode steps it waits before its next draft. */
  draftMisses = 0;
  draftWait = 0;
  readonly outputCounts = new Map<number, number>();
  readonly rng: Rng;
  /** Tokens sampled but not yet reported, and their logprobs. */
  readonly pendingTokens: number[] = [];
  readonly pendingLogprobs: TokenLogprob[] = [];
  readonly arrivalTime = performance.now();
  firstScheduledTime = 0;
  /** Whether an event has gone out (the first one carries the queue time). */
  reportedFirst = false;
  preemptions = 0;
  /**
   * Part of a micro-batch whose forward pass has not finished: the scheduler neither schedules
   * nor preempts it, and an abort waits (its KV is in use on the attention side).
   */
  inFlight = false;

  constructor(
    readonly id: number,
    readonly requestId: string,
    readonly promptTokens: readonly number[],
    readonly params: SamplingParams,
  ) {
    this.rng = new Rng(params.seed ?? (Math.random() * 2 ** 32) >>> 0);
  }

  /** Seconds from arrival to first scheduling (0 until scheduled). */
  queueSeconds(): number {
    return this.firstScheduledTime === 0 ? 0 : (this.firstScheduledTime - this.arrivalTime) / 1000;
  }

  get length(): number {
    return this.promptTokens.length + this.output.length;
  }

  tokenAt(i: number): number {
    const p = this.promptTokens.length;
    return i < p ? this.promptTokens[i]! : this.output[i - p]!;
  }

  /** Token `i` of the sequence, or of its draft past the end (a speculative step's input). */
  stepToken(i: number): number {
    const n = this.length;
    return i < n ? this.tokenAt(i) : this.draft[i - n]!;
  }

  /** Its KV was freed (preempted, or lost with a worker): everything is computed again. */
  forgetKv(): void {
    this.numComputed = 0;
    this.cachedBlocks = 0;
  }

  /**
   * Keeps the first `keep` of the tokens not yet reported and drops the rest (a stop string ended
   * the reply before them); returns how many were dropped.
   */
  dropTokensAfter(keep: number): number {
    const drop = this.pendingTokens.length - keep;
    for (let i = 0; i < drop; i++) {
      const t = this.output.pop()!;
      const n = this.outputCounts.get(t)! - 1;
      if (n === 0) this.outputCounts.delete(t);
      else this.outputCounts.set(t, n);
    }
    this.pendingTokens.length = keep;
    if (this.pendingLogprobs.length > keep) this.pendingLogprobs.length = keep;
    return drop;
  }

  appendToken(token: number): void {
    this.output.push(token);
    this.outputCounts.set(token, (this.outputCounts.get(token) ?? 0) + 1);
    this.pendingTokens.push(token);
  }
}
