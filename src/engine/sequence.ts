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

  /** Its KV was freed (preempted, or lost with a worker): everything is computed again. */
  forgetKv(): void {
    this.numComputed = 0;
    this.cachedBlocks = 0;
  }

  appendToken(token: number): void {
    this.output.push(token);
    this.outputCounts.set(token, (this.outputCounts.get(token) ?? 0) + 1);
    this.pendingTokens.push(token);
  }
}
