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
  /** Leading blocks in the prefix cache (attached from it, or published to it). */
  cachedBlocks = 0;
  /** Prompt tokens taken from the prefix cache when it was first scheduled (-1: not yet scheduled). */
  cachedTokens = -1;
  /**
   * `blockKeys`: the keys of the prompt's full blocks (equal keys: equal tokens up to that block's
   * end), where prefix caching is replayed; absent: no block of it is ever shared.
   */
  constructor(
    readonly id: number,
    readonly arrival: number,
    readonly prompt: number,
    readonly maxTokens: number,
    readonly blockKeys: readonly number[] = [],
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
 * Block `b`'s prefix-cache key: the prompt's given key, or past the prompt's full blocks (a block
 * holding this sequence's own output) a key no other sequence has, as the runtime's hash of the
 * tokens would be; the same for the same sequence again, which a preempted one finds cached.
 */
function blockKey(seq: ReplicaSeq, b: number): number {
  return b < seq.blockKeys.length ? seq.blockKeys[b]! : -1 - (seq.id * 2 ** 21 + b);
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
    // Waiting sequences in order; one whose prefix a running one is computing waits for it.
    let w = 0;
    while (
      budget > 0 &&
      chunks.length < maxSeqs &&
      w < this.waiting.length &&
      this.running.length < this.maxRunning
    ) {
      const seq = this.waiting[w]!;
      if (this.awaitsSharedPrefix(seq)) {
        w++;
        continue;
      }
      this.attachCachedPrefix(seq);
      const count = Math.min(seq.length - seq.numComputed, budget);
      if (!this.admit(seq, count)) {
        if (seq.numComputed > 0) this.kv.release(seq.id); // the cached blocks go back
        seq.numComputed = 0;
        seq.cachedBlocks = 0;
        break;
      }
      this.waiting.splice(w, 1);
      if (seq.cachedTokens < 0) seq.cachedTokens = seq.numComputed;
      seq.status = "running";
      this.running.push(seq);
      chunks.push({ seq, start: seq.numComputed, count, sample: seq.numComputed + count === seq.length });
      budget -= count;
    }
    this.reserve.planned(this.preemptions > preemptedBefore);
    return chunks;
  }

  /** The keys of a waiting sequence's blocks it could take from the cache (all but its last token's), or null. */
  private cacheableKeys(seq: ReplicaSeq): readonly number[] | null {
    const prefix = this.kv.prefix;
    if (!prefix || seq.numComputed > 0) return null;
    const full = Math.floor((seq.length - 1) / prefix.blockSize);
    return full === 0 ? null : Array.from({ length: full }, (_, b) => blockKey(seq, b));
  }

  /** As the runtime's: a running sequence is computing the first block this one would not find cached. */
  private awaitsSharedPrefix(seq: ReplicaSeq): boolean {
    const keys = this.cacheableKeys(seq);
    if (!keys) return false;
    for (const r of this.running) {
      const b = r.cachedBlocks;
      if (b < keys.length && r.numComputed < r.prompt && r.blockKeys[b] === keys[b]) return true;
    }
    return false;
  }

  private attachCachedPrefix(seq: ReplicaSeq): void {
    const keys = this.cacheableKeys(seq);
    if (!keys) return;
    const n = this.kv.prefix!.attach(seq.id, keys);
    seq.numComputed = n * this.kv.prefix!.blockSize;
    seq.cachedBlocks = n;
  }

  /** A landed chunk filled blocks: those the prompt's keys name go into the prefix cache. */
  private publish(seq: ReplicaSeq): void {
    const prefix = this.kv.prefix;
    if (!prefix) return;
    const full = Math.floor(seq.numComputed / prefix.blockSize);
    for (let b = seq.cachedBlocks; b < full; b++) this.kv.prefix.publish(seq.id, b, blockKey(seq, b));
    if (full > seq.cachedBlocks) seq.cachedBlocks = full;
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
      this.publish(seq);
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
    seq.cachedBlocks = 0;
    seq.status = "waiting";
    seq.preemptions++;
    this.preemptions++;
    this.waiting.unshift(seq);
    for (let i = chunks.length - 1; i >= 0; i--) if (chunks[i]!.seq === seq) chunks.splice(i, 1);
  }
}
