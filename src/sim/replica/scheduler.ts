import { OutputReserve, type OutputReserveOptions } from "../../util/output-reserve.js";
import type { KvSpace } from "./kv-space.js";

/** A request as the replica tracks it (the runtime's engine/sequence.ts, lengths only). */
export class ReplicaSeq {
  status: "waiting" | "running" | "done" = "waiting";
  /** Output tokens so far; the sequence's length is prompt + generated. */
  generated = 0;
  /** Tokens whose KV is computed (0 again after a preemption: recompute). */
  numComputed = 0;
  inFlight = false;
  preemptions = 0;
  firstTokenAt = -1;
  lastTokenAt = -1;
  constructor(
    readonly id: number,
    readonly arrival: number,
    readonly prompt: number,
    readonly maxTokens: number,
  ) {}
  get length(): number {
    return this.prompt + this.generated;
  }
}

export interface ReplicaChunk {
  readonly seq: ReplicaSeq;
  readonly start: number;
  readonly count: number;
  readonly sample: boolean;
}

/**
 * The runtime's scheduler (engine/scheduler.ts), line for line on lengths instead of tokens:
 * continuous batching with chunked prefill under one token budget, running sequences first, then
 * waiting ones in order while KV admits them (their tokens plus the OutputReserve's share of their
 * remaining output, the one implementation both use) and the running set is under its cap; when a running
 * sequence cannot grow, the most recent running sequence not in flight is preempted by recompute
 * (its KV freed, its whole context prefilled again later). Keeping this identical is what lets the
 * simulator predict the preemptions the runtime pays.
 */
export class ReplicaScheduler {
  readonly waiting: ReplicaSeq[] = [];
  readonly running: ReplicaSeq[] = [];
  preemptions = 0;
  readonly reserve: OutputReserve;

  constructor(
    private readonly maxRunning: number,
    private readonly kv: KvSpace,
    private readonly maxContext = Number.POSITIVE_INFINITY,
    outputReserve?: OutputReserveOptions,
  ) {
    this.reserve = new OutputReserve(outputReserve);
  }

  get hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > 0;
  }

  schedule(budget: number, maxSeqs = Number.POSITIVE_INFINITY): ReplicaChunk[] {
    const chunks: ReplicaChunk[] = [];
    const preemptedBefore = this.preemptions;
    for (let i = 0; i < this.running.length && budget > 0 && chunks.length < maxSeqs; i++) {
      const seq = this.running[i]!;
      if (seq.inFlight) continue;
      const count = Math.min(seq.length - seq.numComputed, budget);
      if (count <= 0) continue;
      while (!this.kv.reserve(seq.id, seq.numComputed + count)) {
        const victim = this.lastIdleRunning();
        this.preempt(victim, chunks);
        if (victim === seq) break;
      }
      if (seq.status !== "running") break;
      chunks.push({ seq, start: seq.numComputed, count, sample: seq.numComputed + count === seq.length });
      budget -= count;
    }
    while (
      budget > 0 &&
      chunks.length < maxSeqs &&
      this.waiting.length > 0 &&
      this.running.length < this.maxRunning
    ) {
      const seq = this.waiting[0]!;
      const count = Math.min(seq.length - seq.numComputed, budget);
      if (!this.admit(seq, count)) break;
      this.waiting.shift();
      seq.status = "running";
      this.running.push(seq);
      chunks.push({ seq, start: seq.numComputed, count, sample: seq.numComputed + count === seq.length });
      budget -= count;
    }
    this.reserve.planned(this.preemptions > preemptedBefore);
    return chunks;
  }

  /** As the runtime's Scheduler.admit (OutputReserve.tryAdmit). */
  private admit(seq: ReplicaSeq, count: number): boolean {
    const remaining = Math.min(seq.maxTokens - seq.generated, this.maxContext - seq.length);
    const alone = this.running.length === 0;
    return this.reserve.tryAdmit(this.kv, seq.id, seq.length, seq.numComputed, count, remaining, alone);
  }

  /** The step's chunks were computed: KV advances, sampling rows get a token, finished ones leave. */
  land(chunks: readonly ReplicaChunk[], now: number): number {
    let tokens = 0;
    for (const c of chunks) {
      const seq = c.seq;
      seq.inFlight = false;
      if (seq.status !== "running") continue;
      seq.numComputed = c.start + c.count;
      if (!c.sample) continue;
      this.kv.prefillDone(seq.id);
      seq.generated++;
      tokens++;
      if (seq.firstTokenAt < 0) seq.firstTokenAt = now;
      seq.lastTokenAt = now;
      if (seq.generated >= seq.maxTokens) this.finish(seq);
    }
    return tokens;
  }

  private finish(seq: ReplicaSeq): void {
    seq.status = "done";
    const r = this.running.indexOf(seq);
    if (r >= 0) this.running.splice(r, 1);
    this.kv.release(seq.id);
  }

  private lastIdleRunning(): ReplicaSeq {
    for (let i = this.running.length - 1; i >= 0; i--)
      if (!this.running[i]!.inFlight) return this.running[i]!;
    throw new Error("replica scheduler: every running sequence is in flight");
  }

  private preempt(seq: ReplicaSeq, chunks: ReplicaChunk[]): void {
    const r = this.running.indexOf(seq);
    if (r >= 0) this.running.splice(r, 1);
    this.kv.release(seq.id);
    seq.numComputed = 0;
    seq.status = "waiting";
    seq.preemptions++;
    this.preemptions++;
    this.waiting.unshift(seq);
    for (let i = chunks.length - 1; i >= 0; i--) if (chunks[i]!.seq === seq) chunks.splice(i, 1);
  }
}
