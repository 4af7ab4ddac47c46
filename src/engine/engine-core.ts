import type { AttentionService } from "../attention/service.js";
import type { ExecContext, SliceExecutor } from "../runtime/executor.js";
import { createModelStep, type ModelStep } from "../runtime/step.js";
import { IncrementalDetokenizer } from "../tokenizer/detokenizer.js";
import type { Tokenizer } from "../tokenizer/types.js";
import type { EngineStats, FinishReason, GenerateRequest, TokenEvent } from "./api.js";
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
  private readonly step: ModelStep;
  private readonly ctx: ExecContext;
  private readonly bySeqId = new Map<number, Sequence>();
  private readonly byRequest = new Map<string, Sequence>();
  private readonly text = new Map<Sequence, SeqText>();
  private readonly sampleRow: Sequence[] = [];
  private readonly rawLogits: Float32Array;
  private readonly eos: Set<number>;
  private nextSeqId = 1;
  private refused = 0;
  private promptTokens = 0;
  private generationTokens = 0;
  private stepping = false;
  private readonly pendingAborts: string[] = [];

  constructor(
    readonly executor: SliceExecutor,
    readonly attention: AttentionService,
    readonly tokenizer: Tokenizer,
    readonly options: EngineCoreOptions,
  ) {
    this.scheduler = new Scheduler(options, attention);
    this.sampler = new Sampler(options.vocabSize);
    this.step = createModelStep(options.maxTokensPerStep, options.maxRunning);
    this.ctx = executor.createContext();
    this.rawLogits = new Float32Array(options.vocabSize);
    this.eos = new Set(options.eosTokenIds);
  }

  get hasWork(): boolean {
    return this.scheduler.hasWork || this.pendingAborts.length > 0;
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

  /** Runs one engine step; returns the events it produced. */
  async runStep(): Promise<TokenEvent[]> {
    if (this.stepping) throw new Error("engine: runStep re-entered");
    this.stepping = true;
    try {
      const events: TokenEvent[] = [];
      this.applyAborts(events);
      const chunks = this.scheduler.schedule();
      if (chunks.length === 0) {
        this.rejectUnfittable(events);
        return events;
      }
      this.fillStep(chunks);
      const logits = await this.executor.forward(this.ctx, this.step, this.attention);
      this.applyAborts(events);
      this.consume(chunks, logits, events);
      return events;
    } finally {
      this.stepping = false;
    }
  }

  private fillStep(chunks: readonly ScheduledChunk[]): void {
    const st = this.step;
    let t = 0;
    st.nLogits = 0;
    this.sampleRow.length = 0;
    for (let s = 0; s < chunks.length; s++) {
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
        this.sampleRow.push(seq);
      }
    }
    st.seqStart[chunks.length] = t;
    st.nSeqs = chunks.length;
    st.nTokens = t;
  }

  private consume(chunks: readonly ScheduledChunk[], logits: Float32Array, events: TokenEvent[]): void {
    for (const c of chunks) c.seq.numComputed = c.start + c.count;
    const V = this.options.vocabSize;
    for (let r = 0; r < this.sampleRow.length; r++) {
      const seq = this.sampleRow[r]!;
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

  private applyAborts(events: TokenEvent[]): void {
    while (this.pendingAborts.length) {
      const seq = this.byRequest.get(this.pendingAborts.pop()!);
      if (!seq || seq.status === "finished") continue;
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
  }

  /** Nothing could be scheduled: a waiting request that cannot fit even in an empty cache fails. */
  private rejectUnfittable(events: TokenEvent[]): void {
    if (this.scheduler.running.length > 0 || this.scheduler.waiting.length === 0) return;
    const seq = this.scheduler.waiting[0]!;
    this.finish(seq);
    events.push({
      requestId: seq.requestId,
      tokenIds: [],
      text: "",
      finished: true,
      finishReason: "error",
      error: `request needs more KV cache than the attention service has (${seq.length + 1} tokens)`,
      promptTokens: seq.promptTokens.length,
      completionTokens: seq.output.length,
    });
  }

  stats(): EngineStats {
    const timing = this.ctx.timing;
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
      timing: {
        model: timing.model,
        attention: timing.attention,
        transport: timing.transport,
        idle: timing.idle,
        steps: timing.steps,
      },
    };
  }
}
