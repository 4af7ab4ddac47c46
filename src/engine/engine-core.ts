import { type AttentionService, AttentionWorkerLostError } from "../attention/service.js";
import type { ModelExecutor } from "../runtime/model-executor.js";
import { ModelWorkerLostError } from "../runtime/model-executor.js";
import type { Tokenizer } from "../tokenizer/types.js";
import type { EngineStats, GenerateRequest, Readiness, TokenEvent } from "./api.js";
import { InvalidRequestError, PromptTooLongError, QueueFullError } from "./errors.js";
import { type MicroBatch, MicroBatchPipeline } from "./micro-batches.js";
import { endEvent, OutputProcessor } from "./output-processor.js";
import type { SamplingKernels } from "./sampler.js";
import { Scheduler, type SchedulerLimits } from "./scheduler.js";
import { Sequence } from "./sequence.js";
import { draftRows, speculationStats } from "./speculative.js";
import { stepTimingStats } from "./step-timing.js";

export interface EngineCoreOptions extends SchedulerLimits {
  /** Longest sequence (prompt + output) served: the model's context unless capped. */
  readonly maxContext: number;
  /** End-of-sequence ids (tokenizer ∪ generation_config). */
  readonly eosTokenIds: readonly number[];
  readonly vocabSize: number;
  /** Micro-batches in flight (staggered pipelining); 1 = sequential. */
  readonly pipelineDepth: number;
  /** The engine's kernels, whose row kernels the sampler runs (absent: the TypeScript ones). */
  readonly samplingKernels?: SamplingKernels;
}

/**
 * The engine's step: schedule → forward → process outputs. Runs in a worker thread (see
 * placement/engine-thread.ts) so the HTTP event loop never waits on it. Requests and aborts that
 * arrive while a step is in flight are applied at the next step boundary.
 *
 * The parts: the `Scheduler` plans micro-batches under KV admission, the `MicroBatchPipeline`
 * keeps `pipelineDepth` of them in flight through the executor, the `OutputProcessor` samples and
 * reports; this class owns the requests and recovery after a lost attention worker.
 */
export class EngineCore {
  readonly scheduler: Scheduler;
  private readonly pipeline: MicroBatchPipeline;
  private readonly outputs: OutputProcessor;
  private readonly byRequest = new Map<string, Sequence>();
  private readonly pendingAborts: string[] = [];
  private nextSeqId = 1;
  private refused = 0;
  private promptTokens = 0;
  private stepping = false;
  private wallSeconds = 0;
  recoveries = 0;
  /** Why the engine cannot serve now (recovering, no attention capacity), or null when it can. */
  private unready: string | null = null;
  /** Called when readiness changes mid-step, so callers need not wait for the step to end. */
  onReadinessChange: () => void = () => {};

  constructor(
    readonly executor: ModelExecutor,
    readonly attention: AttentionService,
    tokenizer: Tokenizer,
    readonly options: EngineCoreOptions,
  ) {
    this.scheduler = new Scheduler(options, attention);
    this.pipeline = new MicroBatchPipeline(
      options.pipelineDepth,
      options.maxTokensPerStep,
      options.maxRunning,
      options.maxRunning + draftRows(options.speculation, options.maxRunning),
      executor,
      attention,
    );
    this.outputs = new OutputProcessor(
      tokenizer,
      options.vocabSize,
      options.eosTokenIds,
      options.maxContext,
      this.scheduler.speculation,
      options.samplingKernels,
    );
  }

  get hasWork(): boolean {
    return this.scheduler.hasWork || this.pendingAborts.length > 0 || this.pipeline.inFlight() > 0;
  }

  /** Without attention capacity, a step is due even with nothing to serve: it looks for capacity. */
  wantsRetry(): boolean {
    return this.unready !== null && this.attention.recovery?.needsRecovery() === true;
  }

  get readiness(): Readiness {
    return this.unready === null ? { ready: true } : { ready: false, reason: this.unready };
  }

  private setUnready(reason: string | null): void {
    if (reason === this.unready) return;
    this.unready = reason;
    this.onReadinessChange();
  }

  /** Micro-batches whose forward pass is running. */
  inFlight(): number {
    return this.pipeline.inFlight();
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
    this.byRequest.set(req.id, seq);
    this.outputs.track(seq);
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
   * One engine step: every free micro-batch is scheduled and launched (schedule → forward), then
   * the first one to finish is landed and its outputs processed. Micro-batches still running stay
   * in flight across the call (cross-step staggered pipelining). With depth 1 a step is one whole
   * forward pass, as in a sequential engine.
   */
  async runStep(): Promise<TokenEvent[]> {
    if (this.stepping) throw new Error("engine: runStep re-entered");
    this.stepping = true;
    const t0 = performance.now();
    try {
      const events: TokenEvent[] = [];
      this.applyAborts(events);
      if (await this.recoverBetweenSteps(events)) return events;
      this.pipeline.launchFree(this.scheduler, this.options.maxTokensPerStep);
      if (this.pipeline.inFlight() === 0) {
        this.rejectUnfittable(events);
        return events;
      }
      const error = this.land(await this.pipeline.next(), events);
      if (error !== undefined) await this.fail(error, events);
      return events;
    } finally {
      this.wallSeconds += (performance.now() - t0) / 1000;
      this.stepping = false;
    }
  }

  /**
   * A worker lost between steps leaves heads (or owners) with no KV: the micro-batches in flight
   * end first (they fail or complete), then the service rebuilds. True if the step is over.
   */
  private async recoverBetweenSteps(events: TokenEvent[]): Promise<boolean> {
    if (this.executor.recovery?.needsRecovery()) {
      const error = await this.landAll(events);
      if (error !== undefined && !(error instanceof ModelWorkerLostError))
        await this.recoverOrThrow(error, events);
      await this.recoverModelWorkers();
      return true;
    }
    if (!this.attention.recovery?.needsRecovery()) return false;
    const error = await this.landAll(events);
    if (error !== undefined) {
      await this.recoverOrThrow(error, events);
      return true;
    }
    await this.recover(events);
    return false;
  }

  /** A finished micro-batch: its sequences are free again; a completed one's outputs are processed. */
  private land(batch: MicroBatch, events: TokenEvent[]): unknown {
    const outcome = this.pipeline.release(batch);
    this.applyAborts(events); // those that waited for this batch
    if (!outcome.ok) return outcome.error ?? new Error("forward pass failed");
    for (let i = 0; i < batch.nChunks; i++) this.scheduler.publish(batch.chunks[i]!);
    this.outputs.process(batch, outcome.logits, events, (seq) => this.finish(seq));
    return undefined;
  }

  /** Lands every micro-batch in flight, oldest first; returns the first failure, if any. */
  private async landAll(events: TokenEvent[]): Promise<unknown> {
    await this.pipeline.settleAll();
    let error: unknown;
    while (this.pipeline.inFlight() > 0) {
      const e = this.land(this.pipeline.oldestFinished(), events);
      if (e !== undefined && error === undefined) error = e;
    }
    return error;
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
    if (error instanceof ModelWorkerLostError && this.executor.recovery) {
      await this.recoverModelWorkers();
      return;
    }
    if (!(error instanceof AttentionWorkerLostError && this.attention.recovery)) throw error;
    await this.recover(events);
  }

  /**
   * A model worker was lost: it is replaced, and the steps it took down run again at the next
   * launch (their sequences had not advanced; their KV stays on the attention workers).
   */
  private async recoverModelWorkers(): Promise<void> {
    this.setUnready("recovering: a model worker was lost");
    try {
      await this.executor.recovery!.recover();
    } finally {
      this.setUnready(null);
    }
    this.recoveries++;
  }

  /**
   * A worker holding KV was lost: the attention service brings workers back and lays KV out
   * again; every sequence whose KV is gone is rebuilt from its prompt and generated tokens
   * (re-prefilled), so it completes with the same tokens. Requests fail only if no worker is left.
   */
  private async recover(events: TokenEvent[]): Promise<void> {
    const recovery = this.attention.recovery!;
    const all = [...this.scheduler.running, ...this.scheduler.waiting];
    const holding = all.filter((q) => q.numComputed > 0 || q.status === "running");
    let affected: number[];
    this.setUnready("recovering: an attention worker was lost");
    try {
      affected = await recovery.recover(holding.map((q) => q.id));
    } catch (e) {
      const reason = `attention unavailable: ${(e as Error).message}`;
      this.setUnready(reason);
      for (const seq of all) {
        this.finish(seq);
        events.push(endEvent(seq, "error", reason, true));
      }
      return;
    }
    this.setUnready(null);
    if (affected.length > 0) this.recoveries++;
    const ids = new Set(affected);
    this.scheduler.rebuild(holding.filter((q) => ids.has(q.id)));
  }

  /**
   * A step failed in a way the engine cannot recover from: every micro-batch in flight is let
   * end, and every request fails with the reason, so no stream waits for ever. The engine stays
   * usable for new requests.
   */
  async failAll(reason: string): Promise<TokenEvent[]> {
    const events: TokenEvent[] = [];
    await this.pipeline.settleAll();
    for (const b of this.pipeline.batches) if (b.pending) this.pipeline.release(b);
    this.stepping = false;
    for (const seq of [...this.scheduler.running, ...this.scheduler.waiting]) {
      this.finishQuietly(seq);
      events.push(endEvent(seq, "error", reason));
    }
    this.pendingAborts.length = 0;
    return events;
  }

  /** `finish`, where freeing the sequence's KV may itself fail (the service is in a bad state). */
  private finishQuietly(seq: Sequence): void {
    try {
      this.finish(seq);
    } catch {
      seq.status = "finished";
      this.byRequest.delete(seq.requestId);
      this.outputs.forget(seq);
      const r = this.scheduler.running.indexOf(seq);
      if (r >= 0) this.scheduler.running.splice(r, 1);
      const w = this.scheduler.waiting.indexOf(seq);
      if (w >= 0) this.scheduler.waiting.splice(w, 1);
    }
  }

  private finish(seq: Sequence): void {
    if (seq.status === "finished") return;
    seq.status = "finished";
    this.scheduler.remove(seq);
    this.byRequest.delete(seq.requestId);
    this.outputs.forget(seq);
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
      events.push(endEvent(seq, "abort"));
    }
    this.pendingAborts.length = kept;
  }

  /** Nothing could be scheduled: a waiting request that cannot fit even in an empty cache fails. */
  private rejectUnfittable(events: TokenEvent[]): void {
    if (this.scheduler.running.length > 0 || this.scheduler.waiting.length === 0) return;
    const seq = this.scheduler.waiting[0]!;
    this.finish(seq);
    const need = `${seq.length + 1} tokens`;
    // With no capacity at all it is the server's state; otherwise the request is too large for it.
    const none = this.attention.usage().every((u) => u.totalBlocks === 0);
    const why = none
      ? "the attention service has no KV capacity now"
      : "request needs more KV cache than the attention service has";
    events.push(endEvent(seq, "error", `${why} (${need})`, none));
  }

  stats(): EngineStats {
    const service = this.attention.stats?.();
    const plane = this.executor.planeStats?.();
    return {
      running: this.scheduler.running.length,
      peakRunning: this.scheduler.peakRunning,
      readiness: this.readiness,
      waiting: this.scheduler.waiting.length,
      kv: this.attention.usage().map((u) => ({
        worker: u.worker,
        usedBlocks: u.usedBlocks,
        totalBlocks: u.totalBlocks,
        capacityTokens: u.totalBlocks * u.blockSize,
      })),
      preemptions: this.scheduler.preemptions,
      outputReserveRatio: this.scheduler.reserve.ratio,
      refused: this.refused,
      promptTokens: this.promptTokens,
      generationTokens: this.outputs.generationTokens,
      prefixCache: {
        enabled: this.scheduler.prefix !== null,
        queriedTokens: this.scheduler.prefixQueriedTokens,
        hitTokens: this.scheduler.prefixHitTokens,
        cachedBlocks: this.scheduler.prefix?.cachedBlocks() ?? 0,
      },
      speculation: speculationStats(this.scheduler.speculation),
      timing: stepTimingStats(this.executor.timing(), this.wallSeconds, service),
      ...(service?.offload ? { offload: service.offload } : {}),
      ...(plane ? { modelPlane: plane } : {}),
    };
  }
}
