import { AttentionWorkerLostError } from "../attention/remote-service.js";
import type { AttentionService } from "../attention/service.js";
import type { ExecContext, SliceExecutor } from "../runtime/executor.js";
import { createModelStep, type ModelStep } from "../runtime/step.js";
import { IncrementalDetokenizer } from "../tokenizer/detokenizer.js";
import type { Tokenizer } from "../tokenizer/types.js";
import type { EngineStats, FinishReason, GenerateRequest, OffloadStats, TokenEvent } from "./api.js";
import { InvalidRequestError, PromptTooLongError, QueueFullError } from "./errors.js";
import { Sampler } from "./sampler.js";
import { type ScheduledChunk, Scheduler, type SchedulerLimits } from "./scheduler.js";
import { Sequence } from "./sequence.js";
import { StopChecker } from "./stop-checker.js";

export interface EngineCoreOptions extends SchedulerLimits {
  /** Longest sequence (prompt + output) served: the model's context unless capped. */
  readonly maxContext: number;
  /** End-of-sequence ids (tokenizer ∪ generation_config). */
  readonly eosTokenIds: readonly number[];
  readonly vocabSize: number;
  /** Micro-batches in flight per step (staggered pipelining); 1 = sequential. */
  readonly pipelineDepth: number;
}

/** A lane's copy of one scheduled chunk (the scheduler reuses its own between calls). */
interface LaneChunk {
  seq: Sequence;
  start: number;
  count: number;
  sample: boolean;
}

/** How a launched micro-batch ended. */
type LaneOutcome =
  | { readonly ok: true; readonly logits: Float32Array }
  | { readonly ok: false; readonly error: unknown };

/** One micro-batch slot: its step buffers, activation context and the sequences it samples. */
interface Lane {
  readonly step: ModelStep;
  readonly ctx: ExecContext;
  readonly chunks: LaneChunk[];
  nChunks: number;
  readonly sampleRow: Sequence[];
  /** The forward pass in flight, or null when the lane is free. */
  pending: Promise<Lane> | null;
  outcome: LaneOutcome | null;
  /** Launch order, so finished lanes are sampled oldest first. */
  launch: number;
}

/** An attention service that can rebuild after losing a worker (remote attention). */
interface Recoverable {
  recover(seqIds: Iterable<number>): Promise<number[]>;
  /** A worker was lost (even between steps) or a down one is due for a retry. */
  needsRecovery(): boolean;
}

function isRecoverable(a: AttentionService): a is AttentionService & Recoverable {
  const r = a as Partial<Recoverable>;
  return typeof r.recover === "function" && typeof r.needsRecovery === "function";
}

interface SeqText {
  readonly detok: IncrementalDetokenizer;
  readonly stop: StopChecker;
}

/**
 * The engine's busy loop body: schedule → execute the model slices → sample → report. Runs in a
 * worker thread (see engine-worker.ts) so the HTTP event loop never waits on it. Requests and
 * aborts that arrive while a step is in flight are applied at the next step boundary.
 */
export class EngineCore {
  readonly scheduler: Scheduler;
  private readonly sampler: Sampler;
  private readonly lanes: Lane[];
  private readonly bySeqId = new Map<number, Sequence>();
  private readonly byRequest = new Map<string, Sequence>();
  private readonly text = new Map<Sequence, SeqText>();
  private readonly rawLogits: Float32Array;
  private readonly eos: Set<number>;
  private nextSeqId = 1;
  private refused = 0;
  private promptTokens = 0;
  private generationTokens = 0;
  private stepping = false;
  private launches = 0;
  /** The in-flight lanes' promises, gathered for each step's race (reused). */
  private readonly racing: Promise<Lane>[] = [];
  private wallSeconds = 0;
  recoveries = 0;
  private readonly pendingAborts: string[] = [];

  constructor(
    readonly executor: SliceExecutor,
    readonly attention: AttentionService,
    readonly tokenizer: Tokenizer,
    readonly options: EngineCoreOptions,
  ) {
    this.scheduler = new Scheduler(options, attention);
    this.sampler = new Sampler(options.vocabSize);
    this.lanes = Array.from({ length: Math.max(1, options.pipelineDepth) }, () => ({
      step: createModelStep(options.maxTokensPerStep, options.maxRunning),
      ctx: executor.createContext(),
      chunks: [],
      nChunks: 0,
      sampleRow: [],
      pending: null,
      outcome: null,
      launch: 0,
    }));
    this.rawLogits = new Float32Array(options.vocabSize);
    this.eos = new Set(options.eosTokenIds);
  }

  get hasWork(): boolean {
    return this.scheduler.hasWork || this.pendingAborts.length > 0 || this.inFlight() > 0;
  }

  /** Micro-batches whose forward pass is running. */
  inFlight(): number {
    let n = 0;
    for (const l of this.lanes) if (l.pending) n++;
    return n;
  }

  /** Queues a request; throws a typed error (and changes nothing) if it cannot be served. */
  add(req: GenerateRequest): void {
    if (this.byRequest.has(req.id)) throw new InvalidRequestError(`duplicate request id ${req.id}`, "id");
    const n = req.promptTokenIds.length;
    if (n === 0) throw new InvalidRequestError("prompt is empty", "prompt");
    for (const t of req.promptTokenIds) {
      if (!Number.isInteger(t) || t < 0 || t >= this.options.vocabSize) {
        throw new InvalidRequestError(
          `prompt token id ${t} is outside the vocabulary (0..${this.options.vocabSize - 1})`,
          "prompt",
        );
      }
    }
    if (n >= this.options.maxContext) throw new PromptTooLongError(n, this.options.maxContext);
    if (this.scheduler.waiting.length >= this.options.maxWaiting) {
      this.refused++;
      throw new QueueFullError(this.options.maxWaiting);
    }
    const seq = new Sequence(this.nextSeqId++, req.id, req.promptTokenIds, req.params);
    this.bySeqId.set(seq.id, seq);
    this.byRequest.set(req.id, seq);
    this.text.set(seq, {
      detok: new IncrementalDetokenizer(this.tokenizer, req.promptTokenIds),
      stop: new StopChecker(req.params.stop),
    });
    this.scheduler.add(seq);
    this.promptTokens += n;
  }

  /** Ids of every request not yet finished. */
  requestIds(): string[] {
    return [...this.byRequest.keys()];
  }

  /** Cancels a request; its KV is freed at the next step boundary (never under a running step). */
  abort(requestId: string): void {
    if (this.byRequest.has(requestId)) this.pendingAborts.push(requestId);
  }

  /**
   * Runs one engine step: every free micro-batch slot is scheduled and launched, then the first
   * micro-batch to finish is sampled; returns the events it produced. Micro-batches still running
   * stay in flight across the call (cross-step staggered pipelining): while one is sampled and
   * launched again, the others keep the attention side busy, so no step pays a pipeline fill and
   * drain. With depth 1 a step is one whole forward pass, as in a sequential engine.
   */
  async runStep(): Promise<TokenEvent[]> {
    if (this.stepping) throw new Error("engine: runStep re-entered");
    this.stepping = true;
    const t0 = performance.now();
    try {
      const events: TokenEvent[] = [];
      this.applyAborts(events);
      // A worker lost between steps leaves heads (or owners) with no KV: let the micro-batches in
      // flight end (they fail or complete), then rebuild before scheduling.
      if (isRecoverable(this.attention) && this.attention.needsRecovery()) {
        if (await this.settle(events)) return events;
        await this.recover(events);
      }
      this.launchFree();
      if (this.inFlight() === 0) {
        this.rejectUnfittable(events);
        return events;
      }
      const racing = this.racing;
      racing.length = 0;
      for (const l of this.lanes) if (l.pending) racing.push(l.pending);
      await Promise.race(racing);
      const outcome = this.land(this.oldestFinished(), events);
      if (!outcome.ok) await this.fail(outcome.error, events);
      return events;
    } finally {
      this.wallSeconds += (performance.now() - t0) / 1000;
      this.stepping = false;
    }
  }

  /**
   * Waits for every micro-batch in flight and samples those that completed, oldest first. Returns
   * true if one failed (the failure is handled: recovery ran, or the error is rethrown).
   */
  private async settle(events: TokenEvent[]): Promise<boolean> {
    const error = await this.landAll(events);
    if (error === undefined) return false;
    await this.recoverOrThrow(error, events);
    return true;
  }

  /** Lands every lane in flight, oldest first; returns the first failure, if any. */
  private async landAll(events: TokenEvent[]): Promise<unknown> {
    await Promise.all(this.lanes.map((l) => l.pending));
    let error: unknown;
    while (this.inFlight() > 0) {
      const outcome = this.land(this.oldestFinished(), events);
      if (!outcome.ok && error === undefined) error = outcome.error;
    }
    return error;
  }

  /** Of the lanes whose forward pass has ended, the one launched first (steps land in order). */
  private oldestFinished(): Lane {
    let best: Lane | null = null;
    for (const l of this.lanes) if (l.pending && l.outcome && (!best || l.launch < best.launch)) best = l;
    return best!;
  }

  /**
   * A micro-batch failed: every other one ends first (completed ones are still sampled), so no
   * forward pass outlives the step and KV is never laid out again under one; then recover.
   */
  private async fail(error: unknown, events: TokenEvent[]): Promise<void> {
    await this.landAll(events);
    await this.recoverOrThrow(error, events);
  }

  /** With nothing in flight: a lost attention worker is recovered from; anything else is thrown. */
  private async recoverOrThrow(error: unknown, events: TokenEvent[]): Promise<void> {
    if (!(error instanceof AttentionWorkerLostError && isRecoverable(this.attention))) throw error;
    await this.recover(events);
  }

  /**
   * Schedules each free lane from the sequences not in flight and starts its forward pass. A lane
   * takes at most its share of the runnable sequences and of the step token budget, so the
   * micro-batches stay balanced as sequences come and go.
   */
  private launchFree(): void {
    const depth = this.lanes.length;
    const budget = Math.ceil(this.options.maxTokensPerStep / depth);
    const share = Math.max(
      1,
      Math.ceil((this.scheduler.running.length + this.scheduler.waiting.length) / depth),
    );
    for (const lane of this.lanes) {
      if (lane.pending) continue;
      const chunks = this.scheduler.schedule(budget, share);
      if (chunks.length === 0) continue;
      this.fillLane(lane, chunks);
      lane.outcome = null;
      lane.launch = this.launches++;
      lane.pending = this.executor.forward(lane.ctx, lane.step, this.attention).then(
        (logits) => {
          lane.outcome = { ok: true, logits };
          return lane;
        },
        (error: unknown) => {
          lane.outcome = { ok: false, error };
          return lane;
        },
      );
    }
  }

  /** A launched lane has finished: its sequences are free again; a completed one is sampled. */
  private land(lane: Lane, events: TokenEvent[]): LaneOutcome {
    const outcome = lane.outcome!;
    lane.pending = null;
    lane.outcome = null;
    for (let i = 0; i < lane.nChunks; i++) lane.chunks[i]!.seq.inFlight = false;
    this.applyAborts(events); // those that waited for this lane
    if (outcome.ok) this.consume(lane, outcome.logits, events);
    return outcome;
  }

  /** Copies the scheduler's chunks into the lane (the scheduler reuses its own) and fills its step. */
  private fillLane(lane: Lane, chunks: readonly ScheduledChunk[]): void {
    lane.nChunks = chunks.length;
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!;
      let own = lane.chunks[i];
      if (!own) {
        own = { seq: c.seq, start: 0, count: 0, sample: false };
        lane.chunks.push(own);
      }
      own.seq = c.seq;
      own.start = c.start;
      own.count = c.count;
      own.sample = c.sample;
      c.seq.inFlight = true;
    }
    this.fillStep(lane);
  }

  private fillStep(lane: Lane): void {
    const st = lane.step;
    const chunks = lane.chunks;
    let t = 0;
    st.nLogits = 0;
    lane.sampleRow.length = 0;
    for (let s = 0; s < lane.nChunks; s++) {
      const { seq, start, count, sample } = chunks[s]!;
      st.seqIds[s] = seq.id;
      st.seqStart[s] = t;
      for (let j = 0; j < count; j++) {
        st.tokens[t] = seq.tokenAt(start + j);
        st.positions[t] = start + j;
        t++;
      }
      if (sample) {
        st.logitRows[st.nLogits++] = t - 1;
        lane.sampleRow.push(seq);
      }
    }
    st.seqStart[lane.nChunks] = t;
    st.nSeqs = lane.nChunks;
    st.nTokens = t;
  }

  /**
   * A worker holding KV was lost: the attention service brings workers back and lays KV out
   * again; every sequence whose KV is gone is rebuilt from its prompt and generated tokens
   * (re-prefilled), so it completes with the same tokens. Requests fail only if no worker is left.
   */
  private async recover(events: TokenEvent[]): Promise<void> {
    const svc = this.attention as AttentionService & Recoverable;
    const holding = [...this.scheduler.running, ...this.scheduler.waiting].filter(
      (q) => q.numComputed > 0 || q.status === "running",
    );
    let affected: number[];
    try {
      affected = await svc.recover(holding.map((q) => q.id));
    } catch (e) {
      for (const seq of [...this.scheduler.running, ...this.scheduler.waiting]) {
        this.finish(seq);
        events.push(this.errorEvent(seq, `attention unavailable: ${(e as Error).message}`));
      }
      return;
    }
    if (affected.length > 0) this.recoveries++;
    const ids = new Set(affected);
    this.scheduler.rebuild(holding.filter((q) => ids.has(q.id)));
  }

  private consume(lane: Lane, logits: Float32Array, events: TokenEvent[]): void {
    for (let i = 0; i < lane.nChunks; i++) {
      const c = lane.chunks[i]!;
      if (c.seq.status === "running") c.seq.numComputed = c.start + c.count;
    }
    const V = this.options.vocabSize;
    for (let r = 0; r < lane.sampleRow.length; r++) {
      const seq = lane.sampleRow[r]!;
      if (seq.status !== "running") continue; // aborted during the step
      const off = r * V;
      const want = seq.params.logprobs;
      if (want !== null) this.rawLogits.set(logits.subarray(off, off + V));
      const token = this.sampler.sample(logits, off, seq);
      if (want !== null) seq.pendingLogprobs.push(this.sampler.logprobs(this.rawLogits, 0, token, want));
      seq.appendToken(token);
      this.generationTokens++;
      const reason = this.finishReason(seq, token);
      events.push(this.event(seq, reason));
      if (reason) this.finish(seq);
    }
  }

  private finishReason(seq: Sequence, token: number): FinishReason | null {
    const p = seq.params;
    if (!p.ignoreEos && this.eos.has(token)) return "stop";
    if (p.stopTokenIds.includes(token)) return "stop";
    if (seq.output.length >= p.maxTokens) return "length";
    if (seq.length >= this.options.maxContext) return "length";
    return null;
  }

  /** Builds the event for a sequence's new tokens; a stop string found in the text ends it. */
  private event(seq: Sequence, reason: FinishReason | null): TokenEvent {
    const tx = this.text.get(seq)!;
    let text = "";
    const eosEnded = reason === "stop" && !seq.params.ignoreEos;
    for (let i = 0; i < seq.pendingTokens.length; i++) {
      const tok = seq.pendingTokens[i]!;
      // The token that ended generation (EOS / stop id) contributes no text.
      if (eosEnded && i === seq.pendingTokens.length - 1) break;
      text += tx.detok.push(tok);
    }
    if (reason) text += tx.detok.flush();
    let { emit, stopped } = tx.stop.push(text);
    if (stopped) reason = "stop";
    else if (reason) emit += tx.stop.flush();
    const ev: TokenEvent = {
      requestId: seq.requestId,
      tokenIds: seq.pendingTokens.slice(),
      text: emit,
      ...(seq.params.logprobs !== null ? { logprobs: seq.pendingLogprobs.slice() } : {}),
      finished: reason !== null,
      ...(reason ? { finishReason: reason } : {}),
      promptTokens: seq.promptTokens.length,
      completionTokens: seq.output.length,
    };
    seq.pendingTokens.length = 0;
    seq.pendingLogprobs.length = 0;
    if (stopped && seq.status !== "finished") this.finish(seq);
    return ev;
  }

  private finish(seq: Sequence): void {
    if (seq.status === "finished") return;
    seq.status = "finished";
    this.scheduler.remove(seq);
    this.bySeqId.delete(seq.id);
    this.byRequest.delete(seq.requestId);
    this.text.delete(seq);
  }

  /** Applies pending aborts; one whose sequence is in flight waits until its micro-batch ends. */
  private applyAborts(events: TokenEvent[]): void {
    let kept = 0;
    for (let i = 0; i < this.pendingAborts.length; i++) {
      const id = this.pendingAborts[i]!;
      const seq = this.byRequest.get(id);
      if (!seq || seq.status === "finished") continue;
      if (seq.inFlight) {
        this.pendingAborts[kept++] = id;
        continue;
      }
      this.finish(seq);
      events.push({
        requestId: seq.requestId,
        tokenIds: [],
        text: "",
        finished: true,
        finishReason: "abort",
        promptTokens: seq.promptTokens.length,
        completionTokens: seq.output.length,
      });
    }
    this.pendingAborts.length = kept;
  }

  /** Nothing could be scheduled: a waiting request that cannot fit even in an empty cache fails. */
  private rejectUnfittable(events: TokenEvent[]): void {
    if (this.scheduler.running.length > 0 || this.scheduler.waiting.length === 0) return;
    const seq = this.scheduler.waiting[0]!;
    this.finish(seq);
    events.push(
      this.errorEvent(
        seq,
        `request needs more KV cache than the attention service has (${seq.length + 1} tokens)`,
      ),
    );
  }

  private errorEvent(seq: Sequence, error: string): TokenEvent {
    return {
      requestId: seq.requestId,
      tokenIds: [],
      text: "",
      finished: true,
      finishReason: "error",
      error,
      promptTokens: seq.promptTokens.length,
      completionTokens: seq.output.length,
    };
  }

  stats(): EngineStats {
    let model = 0;
    let wait = 0;
    let steps = 0;
    for (const l of this.lanes) {
      model += l.ctx.timing.model;
      wait += l.ctx.timing.attention;
      steps = Math.max(steps, l.ctx.timing.steps);
    }
    const remote = this.attention as {
      attentionMicros?: number;
      aliveWorkers?: number;
      offloadStats?: () => OffloadStats;
    };
    const reported = remote.attentionMicros;
    // Remote workers report their compute (early and late pass); the rest of the model side's wait
    // is transport. In-process, the wait is attention. Under pipelining a lane's wait also spans the
    // other lanes' model compute, so the wait on the model side's critical path is bounded by the
    // time it was not computing; attention compute of workers running in parallel overlaps too.
    const attention = reported === undefined ? wait : reported / 1e6;
    const waitOnPath = Math.min(wait, Math.max(0, this.wallSeconds - model));
    const transport =
      reported === undefined
        ? 0
        : Math.max(0, waitOnPath - attention / Math.max(1, remote.aliveWorkers ?? 1));
    return {
      running: this.scheduler.running.length,
      waiting: this.scheduler.waiting.length,
      kv: this.attention
        .usage()
        .map((u) => ({ worker: u.worker, usedBlocks: u.usedBlocks, totalBlocks: u.totalBlocks })),
      preemptions: this.scheduler.preemptions,
      refused: this.refused,
      promptTokens: this.promptTokens,
      generationTokens: this.generationTokens,
      timing: { model, attention, transport, idle: Math.max(0, this.wallSeconds - model), steps },
      ...(remote.offloadStats ? { offload: remote.offloadStats() } : {}),
    };
  }
}
