import type { AttentionService, PrefixCaching } from "../attention/service.js";
import { OutputReserve, type OutputReserveOptions } from "../util/output-reserve.js";
import { blockKeys } from "./prefix-keys.js";
import type { Sequence } from "./sequence.js";
import { draftRows, Speculation, type SpeculationOptions } from "./speculative.js";

export interface SchedulerLimits {
  /** Sequences in the running set at once. */
  readonly maxRunning: number;
  /** Tokens computed in one step (decode tokens + prefill chunks): bounds a step's latency. */
  readonly maxTokensPerStep: number;
  /** Requests allowed to wait; beyond it new ones are refused at once. */
  readonly maxWaiting: number;
  /** Longest sequence served; bounds the output a request is admitted with room for. */
  readonly maxContext?: number;
  /** KV reserved for a request's future output at admission (util/output-reserve.ts); the default if absent. */
  readonly outputReserve?: OutputReserveOptions;
  /** Reuse cached KV of shared prompt prefixes where the attention service can (default true). */
  readonly prefixCaching?: boolean;
  /**
   * Speculative decoding by prompt lookup (engine/speculative.ts), where the attention service
   * lets a sequence's KV past its computed length be written again; absent: off.
   */
  readonly speculation?: SpeculationOptions;
}

/**
 * One sequence's share of a step: compute tokens [start, start + count); sample if it reaches the
 * end. The last `drafts` of them are the sequence's draft (seq.draft), each with a logit row too.
 */
export interface ScheduledChunk {
  readonly seq: Sequence;
  readonly start: number;
  readonly count: number;
  readonly sample: boolean;
  readonly drafts: number;
}

/**
 * Continuous batching with chunked prefill (vLLM-style, one token budget for decode and prefill):
 * running sequences first (decodes and unfinished prefills), then waiting ones in arrival order.
 * KV admission asks the attention service, for a waiting sequence's tokens plus a share of the
 * output it may still produce (OutputReserve: the share rises after preemptions and falls while
 * the cache is calm); when a running sequence cannot grow, the most recent arrival is preempted by
 * recompute (its KV freed, its tokens re-prefilled later).
 */
export class Scheduler {
  readonly waiting: Sequence[] = [];
  readonly running: Sequence[] = [];
  preemptions = 0;
  /** The most sequences running at once so far. */
  peakRunning = 0;
  readonly reserve: OutputReserve;
  private readonly chunks: ScheduledChunk[] = [];
  /** The attention service's prefix cache, or null (off, or a service that cannot share blocks). */
  readonly prefix: PrefixCaching | null;
  /** Prompt tokens admitted, and those of them the prefix cache held (first admissions only). */
  prefixQueriedTokens = 0;
  prefixHitTokens = 0;
  /** Speculative decoding, or null (off, or a service that cannot take a draft's KV back). */
  readonly speculation: Speculation | null;

  constructor(
    readonly limits: SchedulerLimits,
    private readonly attention: AttentionService,
  ) {
    this.reserve = new OutputReserve(limits.outputReserve);
    this.prefix = limits.prefixCaching === false ? null : (attention.prefix ?? null);
    const spec = limits.speculation;
    this.speculation =
      spec && spec.tokens > 0 && attention.rewritesKv ? new Speculation(spec, limits.maxContext) : null;
  }

  get hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > 0;
  }

  add(seq: Sequence): void {
    this.waiting.push(seq);
  }

  /** Removes a sequence wherever it is and frees its KV. */
  remove(seq: Sequence): void {
    const w = this.waiting.indexOf(seq);
    if (w >= 0) this.waiting.splice(w, 1);
    const r = this.running.indexOf(seq);
    if (r >= 0) this.running.splice(r, 1);
    this.attention.release(seq.id);
  }

  /**
   * Plans one micro-batch: at most `budget` tokens over at most `maxSeqs` sequences, from the
   * sequences not in flight in another micro-batch (those are neither scheduled nor preempted).
   */
  schedule(
    budget: number = this.limits.maxTokensPerStep,
    maxSeqs = Number.POSITIVE_INFINITY,
  ): readonly ScheduledChunk[] {
    const chunks = this.chunks;
    chunks.length = 0;
    const preemptedBefore = this.preemptions;
    // Logit rows a step has beyond one per sequence: what drafts may take.
    let spareRows = draftRows(this.limits.speculation, this.limits.maxRunning);
    for (let i = 0; i < this.running.length && budget > 0 && chunks.length < maxSeqs; i++) {
      const seq = this.running[i]!;
      if (seq.inFlight) continue;
      const count = Math.min(seq.length - seq.numComputed, budget);
      if (count <= 0) continue;
      if (seq.length - seq.numComputed === 1) {
        const drafts = this.plannedDraft(seq, Math.min(budget - 1, spareRows));
        if (drafts > 0) {
          chunks.push(this.chunk(seq, 1 + drafts, drafts));
          budget -= 1 + drafts;
          spareRows -= drafts;
          continue;
        }
      }
      while (!this.attention.reserve(seq.id, seq.numComputed + count)) {
        const victim = this.lastIdleRunning();
        this.preempt(victim);
        if (victim === seq) break;
      }
      if (seq.status !== "running") break; // it preempted itself: nothing after it fits either
      chunks.push(this.chunk(seq, count));
      budget -= count;
    }
    // Waiting sequences in arrival order; one whose prefix another is computing now waits for it.
    let w = 0;
    while (
      budget > 0 &&
      chunks.length < maxSeqs &&
      w < this.waiting.length &&
      this.running.length < this.limits.maxRunning
    ) {
      const seq = this.waiting[w]!;
      if (this.awaitsSharedPrefix(seq)) {
        w++;
        continue;
      }
      this.attachCachedPrefix(seq);
      const count = Math.min(seq.length - seq.numComputed, budget);
      if (!this.admit(seq, count)) {
        if (seq.numComputed > 0) this.attention.release(seq.id); // the cached blocks go back
        seq.forgetKv();
        break;
      }
      this.waiting.splice(w, 1);
      seq.status = "running";
      if (seq.firstScheduledTime === 0) {
        seq.firstScheduledTime = performance.now();
        seq.cachedTokens = seq.numComputed;
        this.prefixQueriedTokens += seq.promptTokens.length;
        this.prefixHitTokens += seq.numComputed;
      }
      this.running.push(seq);
      this.peakRunning = Math.max(this.peakRunning, this.running.length);
      chunks.push(this.chunk(seq, count));
      budget -= count;
    }
    this.reserve.planned(this.preemptions > preemptedBefore);
    return chunks;
  }

  /**
   * A decoding sequence's draft for this step, its KV reserved: how many tokens (0: no draft, or
   * no room for one; a draft never preempts anything).
   */
  private plannedDraft(seq: Sequence, room: number): number {
    if (!this.speculation || room <= 0) return 0;
    const drafts = this.speculation.draft(seq, room, this.running.length);
    if (drafts > 0 && this.attention.reserve(seq.id, seq.length + drafts)) return drafts;
    seq.draft.length = 0;
    return 0;
  }

  /**
   * Whether a waiting sequence should let a running one finish the prefill they share: the running
   * one is computing the first block this one would not find cached (equal chained keys: equal
   * prompts up to that block's end), so admitting it now would compute that prefix twice (n > 1
   * choices of one prompt, a burst of requests with one system prompt). It is admitted once the
   * block is cached. Sequences behind it are admitted meanwhile.
   */
  private awaitsSharedPrefix(seq: Sequence): boolean {
    const keys = this.cacheableKeys(seq);
    if (!keys) return false;
    for (const r of this.running) {
      const b = r.cachedBlocks; // the block r computes next
      if (b < keys.length && r.numComputed < r.promptTokens.length && r.blockKeys[b] === keys[b]) return true;
    }
    return false;
  }

  /**
   * A waiting sequence (holding no KV) starts on the cached blocks of its longest cached prefix.
   * Its last token is always computed: its logits give the next token.
   */
  private attachCachedPrefix(seq: Sequence): void {
    const keys = this.cacheableKeys(seq);
    if (!keys) return;
    const n = this.prefix!.attach(seq.id, keys);
    seq.numComputed = n * this.attention.blockSize;
    seq.cachedBlocks = n;
  }

  /**
   * The keys of the whole blocks a waiting sequence could take from the cache (all but its last
   * token's), or null: caching off, the sequence holds KV, or it has no such block.
   */
  private cacheableKeys(seq: Sequence): readonly string[] | null {
    if (!this.prefix || seq.numComputed > 0) return null;
    const bs = this.attention.blockSize;
    const full = Math.floor((seq.length - 1) / bs);
    return full === 0 ? null : blockKeys(seq, bs, full);
  }

  /**
   * A step computed `chunk`: the blocks it filled go into the prefix cache (their KV is written).
   * Called for completed micro-batches only, before a sequence that ended lets its blocks go.
   */
  publish(chunk: ScheduledChunk): void {
    const seq = chunk.seq;
    if (!this.prefix || seq.status !== "running") return;
    const bs = this.attention.blockSize;
    // A draft's positions hold KV of tokens not yet verified: they are published once computed again.
    const full = Math.floor((chunk.start + chunk.count - chunk.drafts) / bs);
    if (full <= seq.cachedBlocks) return;
    const keys = blockKeys(seq, bs, full);
    for (let b = seq.cachedBlocks; b < full; b++) this.prefix.publish(seq.id, b, keys[b]!);
    seq.cachedBlocks = full;
  }

  /** Reserves KV for a waiting sequence through the output reserve (OutputReserve.tryAdmit). */
  private admit(seq: Sequence, count: number): boolean {
    const context = this.limits.maxContext ?? Number.POSITIVE_INFINITY;
    const remaining = Math.min(seq.params.maxTokens - seq.output.length, context - seq.length);
    const alone = this.running.length === 0;
    return this.reserve.tryAdmit(
      this.attention,
      seq.id,
      seq.length,
      seq.numComputed,
      count,
      remaining,
      alone,
    );
  }

  /** The most recent arrival not in flight (the caller's own sequence is always a candidate). */
  private lastIdleRunning(): Sequence {
    for (let i = this.running.length - 1; i >= 0; i--)
      if (!this.running[i]!.inFlight) return this.running[i]!;
    throw new Error("scheduler: every running sequence is in flight");
  }

  /** Chunk objects are pooled: a decode step allocates nothing per sequence. */
  private readonly pool: { seq: Sequence; start: number; count: number; sample: boolean; drafts: number }[] =
    [];

  private chunk(seq: Sequence, count: number, drafts = 0): ScheduledChunk {
    let c = this.pool[this.chunks.length];
    if (!c) {
      c = { seq, start: 0, count: 0, sample: false, drafts: 0 };
      this.pool.push(c);
    }
    c.seq = seq;
    c.start = seq.numComputed;
    c.count = count;
    c.sample = seq.numComputed + count - drafts === seq.length;
    c.drafts = drafts;
    return c;
  }

  /**
   * Sequences whose KV was lost (an attention worker died): back to the head of the queue, in
   * arrival order, to be re-prefilled from their prompt and generated tokens.
   */
  rebuild(seqs: readonly Sequence[]): void {
    for (const seq of seqs) {
      const r = this.running.indexOf(seq);
      if (r >= 0) this.running.splice(r, 1);
      const w = this.waiting.indexOf(seq);
      if (w >= 0) this.waiting.splice(w, 1);
      this.attention.release(seq.id);
      seq.forgetKv();
      seq.status = "waiting";
    }
    const ordered = [...seqs].sort((a, b) => a.id - b.id);
    this.waiting.unshift(...ordered);
  }

  private preempt(seq: Sequence): void {
    const r = this.running.indexOf(seq);
    if (r >= 0) this.running.splice(r, 1);
    this.attention.release(seq.id);
    seq.forgetKv();
    seq.status = "waiting";
    seq.preemptions++;
    this.preemptions++;
    this.waiting.unshift(seq);
    // Drop chunks already planned for it this step.
    for (let i = this.chunks.length - 1; i >= 0; i--)
      if (this.chunks[i]!.seq === seq) this.chunks.splice(i, 1);
  }
}
