import { IncrementalDetokenizer } from "../tokenizer/detokenizer.js";
import type { Tokenizer } from "../tokenizer/types.js";
import type { FinishReason, SamplingParams, TokenEvent } from "./api.js";
import { acceptToken, allowedTokens, JSON_OBJECT, type JsonState, jsonStart } from "./json-constraint.js";
import { compileSchema } from "./json-schema.js";
import type { MicroBatch } from "./micro-batches.js";
import { Sampler, type SamplingKernels } from "./sampler.js";
import type { Sequence } from "./sequence.js";
import type { Speculation } from "./speculative.js";
import { StopChecker } from "./stop-checker.js";
import { type DrawContext, ToolCallDraw } from "./tool-call-draw.js";

interface SeqText {
  readonly detok: IncrementalDetokenizer;
  readonly stop: StopChecker;
  /** JSON mode: the reply so far as the automaton read it; null without a constraint. */
  json: JsonState | null;
  /** JSON mode: the tokens that end the sequence (built at its first constrained draw). */
  ends?: Uint8Array;
  /** A structured reply that is thinking (params.structuredThink): drawn freely until the close tag. */
  thinking: boolean;
  /** No token of the structured value drawn yet (the reply may still open a think block). */
  fresh: boolean;
  /** Strict tool calls (params.toolCalls): how this reply's calls are drawn; null without. */
  tools: ToolCallDraw | null;
}

/**
 * Turns a finished micro-batch's logits into what callers see: sampled tokens, finish reasons
 * (EOS, stop ids, length, stop strings), detokenized text held back while a stop string may still
 * match, and one event per sequence. Knows nothing of scheduling or placement.
 */
export class OutputProcessor {
  private readonly sampler: Sampler;
  private readonly rawLogits: Float32Array;
  private readonly eos: Set<number>;
  private readonly text = new Map<Sequence, SeqText>();
  private draws: DrawContext | null = null;
  generationTokens = 0;
  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly vocabSize: number,
    eosTokenIds: readonly number[],
    private readonly maxContext: number,
    /** Speculative decoding, where the scheduler drafts: told what each draft kept. */
    private readonly speculation: Speculation | null = null,
    /** The kernels the sampler runs its rows on (Sampler's `kernels`). */
    samplingKernels?: SamplingKernels,
  ) {
    this.sampler = new Sampler(vocabSize, samplingKernels);
    this.rawLogits = new Float32Array(vocabSize);
    this.eos = new Set(eosTokenIds);
  }

  track(seq: Sequence): void {
    this.text.set(seq, {
      detok: new IncrementalDetokenizer(this.tokenizer, seq.promptTokens),
      stop: new StopChecker(seq.params.stop),
      json: structuredStart(seq.params),
      thinking: seq.params.structuredThink?.inside === true,
      fresh: true,
      tools: seq.params.toolCalls ? new ToolCallDraw(seq.params.toolCalls) : null,
    });
  }

  forget(seq: Sequence): void {
    this.text.delete(seq);
  }

  /**
   * Samples every sampling row of a completed batch and reports each sequence's news. Calls
   * `finish` for sequences that ended (the caller frees them).
   */
  process(
    batch: MicroBatch,
    logits: Float32Array,
    events: TokenEvent[],
    finish: (s: Sequence) => void,
  ): void {
    for (let i = 0; i < batch.nChunks; i++) {
      const c = batch.chunks[i]!;
      // A draft's KV counts once its tokens are kept (sampleDrafted).
      if (c.seq.status === "running") c.seq.numComputed = c.start + c.count - c.drafts;
    }
    // Each sampled sequence's rows follow the previous one's: one, and one a draft token.
    for (let r = 0, at = 0; r < batch.sampleRow.length; at += 1 + batch.sampleDrafts[r]!, r++) {
      const seq = batch.sampleRow[r]!;
      if (seq.status !== "running") continue; // aborted during the step
      const drafts = batch.sampleDrafts[r]!;
      const reason =
        drafts === 0 ? this.sampleRow(logits, at, seq) : this.sampleDrafted(logits, at, drafts, seq);
      const { event, ended } = this.event(seq, reason);
      events.push(event);
      if (ended) finish(seq);
    }
  }

  /** Draws the token of logit row `row` for `seq` and appends it; returns why it ends the sequence, if it does. */
  private sampleRow(logits: Float32Array, row: number, seq: Sequence): FinishReason | null {
    const off = row * this.vocabSize;
    const want = seq.params.logprobs;
    if (want !== null) this.rawLogits.set(logits.subarray(off, off + this.vocabSize));
    const token = this.draw(logits, off, seq, this.text.get(seq)!);
    if (want !== null) seq.pendingLogprobs.push(this.sampler.logprobs(this.rawLogits, 0, token, want));
    seq.appendToken(token);
    this.generationTokens++;
    return this.finishReason(seq, token);
  }

  /**
   * A speculative step (engine/speculative.ts): rows at, at + 1, … follow the sequence's last token
   * and each of its `drafts` draft tokens. Each row is drawn as a plain step would draw it, and while
   * the draw equals the draft token the row was computed after, the next row is valid too. The KV
   * of the draft tokens kept counts as computed; the rest is written over by the next step.
   */
  private sampleDrafted(
    logits: Float32Array,
    at: number,
    drafts: number,
    seq: Sequence,
  ): FinishReason | null {
    const draft = seq.draft;
    let kept = 0;
    let reason: FinishReason | null = null;
    for (let i = 0; i <= drafts; i++) {
      reason = this.sampleRow(logits, at + i, seq);
      if (reason !== null || i === drafts || seq.output[seq.output.length - 1] !== draft[i]) break;
      kept++;
    }
    seq.numComputed += kept;
    this.speculation?.verified(seq, drafts, kept);
    draft.length = 0;
    return reason;
  }

  /** The row's token: drawn freely, under strict tool calls, or as a structured reply (thinking first). */
  private draw(logits: Float32Array, off: number, seq: Sequence, tx: SeqText): number {
    if (tx.json)
      return tx.thinking ? this.sampleThinking(logits, off, seq, tx) : this.sampleJson(logits, off, seq, tx);
    if (tx.tools) return tx.tools.draw(this.drawContext(logits, off, seq, tx));
    return this.sampler.sample(logits, off, seq);
  }

  /**
   * A token that continues the reply's JSON object, or ends it once the object is closed. Should
   * no token be allowed (a vocabulary without the bytes JSON needs), the reply ends at EOS.
   */
  private sampleJson(logits: Float32Array, off: number, seq: Sequence, tx: SeqText): number {
    const pieces = this.tokenizer.pieces!;
    const ends = (tx.ends ??= this.endMask(seq));
    const state = tx.json!;
    const allowed = allowedTokens(state, pieces, this.vocabSize, ends);
    // A reasoning model may open its think block before the value.
    const open = tx.fresh ? (seq.params.structuredThink?.open ?? -1) : -1;
    const token = this.sampler.sampleAllowed(logits, off, seq, (t) => t === open || allowed(t));
    if (token < 0) return this.eos.values().next().value ?? this.sampler.sample(logits, off, seq);
    if (token === open) {
      tx.thinking = true;
      return token;
    }
    tx.fresh = false;
    tx.json = acceptToken(state, token, pieces, (t) => ends[t] === 1);
    return token;
  }

  /** A structured reply's thinking, drawn freely; its close tag starts the value. */
  private sampleThinking(logits: Float32Array, off: number, seq: Sequence, tx: SeqText): number {
    const token = this.sampler.sample(logits, off, seq);
    if (token === seq.params.structuredThink?.close) {
      tx.thinking = false;
      tx.fresh = false;
    }
    return token;
  }

  /** The one DrawContext strict tool calls are drawn with, filled for this row. */
  private drawContext(logits: Float32Array, off: number, seq: Sequence, tx: SeqText): DrawContext {
    const d = (this.draws ??= {
      sampler: this.sampler,
      logits,
      off,
      seq,
      pieces: this.tokenizer.pieces!,
      vocabSize: this.vocabSize,
      ends: new Uint8Array(0),
    });
    d.logits = logits;
    d.off = off;
    d.seq = seq;
    d.ends = tx.ends ??= this.endMask(seq);
    return d;
  }

  /** The tokens that end a sequence (EOS unless ignored, its stop_token_ids), one flag a token. */
  private endMask(seq: Sequence): Uint8Array {
    const m = new Uint8Array(this.vocabSize);
    if (!seq.params.ignoreEos) for (const t of this.eos) if (t < this.vocabSize) m[t] = 1;
    for (const t of seq.params.stopTokenIds) if (t < this.vocabSize) m[t] = 1;
    return m;
  }

  private finishReason(seq: Sequence, token: number): FinishReason | null {
    const p = seq.params;
    if (!p.ignoreEos && this.eos.has(token)) return "stop";
    if (p.stopTokenIds.includes(token)) return "stop";
    if (seq.output.length >= p.maxTokens) return "length";
    if (seq.length >= this.maxContext) return "length";
    return null;
  }

  /** Builds the event for a sequence's new tokens; a stop string found in the text ends it. */
  private event(seq: Sequence, reason: FinishReason | null): { event: TokenEvent; ended: boolean } {
    const tx = this.text.get(seq)!;
    let emit = "";
    let stopped = false;
    const eosEnded = reason === "stop" && !seq.params.ignoreEos;
    // Token by token: a stop string ends the reply at the token that completed it, and tokens a
    // speculative step kept after that one are dropped (as one token a step would not make them).
    for (let i = 0; i < seq.pendingTokens.length; i++) {
      const tok = seq.pendingTokens[i]!;
      // The token that ended generation (EOS / stop id) contributes no text.
      if (eosEnded && i === seq.pendingTokens.length - 1) break;
      const r = tx.stop.push(tx.detok.push(tok));
      emit += r.emit;
      if (r.stopped) {
        this.generationTokens -= seq.dropTokensAfter(i + 1);
        stopped = true;
        break;
      }
    }
    if (!stopped && reason) {
      const r = tx.stop.push(tx.detok.flush());
      emit += r.emit;
      stopped = r.stopped;
    }
    if (stopped) reason = "stop";
    else if (reason) emit += tx.stop.flush();
    const first = !seq.reportedFirst;
    seq.reportedFirst = true;
    const event: TokenEvent = {
      requestId: seq.requestId,
      tokenIds: seq.pendingTokens.slice(),
      text: emit,
      ...(seq.params.logprobs !== null ? { logprobs: seq.pendingLogprobs.slice() } : {}),
      finished: reason !== null,
      ...(reason ? { finishReason: reason } : {}),
      promptTokens: seq.promptTokens.length,
      completionTokens: seq.output.length,
      ...(first ? { queueTime: seq.queueSeconds(), cachedTokens: seq.cachedTokens } : {}),
    };
    seq.pendingTokens.length = 0;
    seq.pendingLogprobs.length = 0;
    return { event, ended: reason !== null };
  }
}

/** The final event of a sequence that ends without a token: aborted, or failed. */
export function endEvent(
  seq: Sequence,
  finishReason: "abort" | "error",
  error?: string,
  unavailable = false,
): TokenEvent {
  return {
    requestId: seq.requestId,
    tokenIds: [],
    text: "",
    finished: true,
    finishReason,
    ...(error !== undefined ? { error } : {}),
    ...(unavailable ? { unavailable } : {}),
    promptTokens: seq.promptTokens.length,
    completionTokens: seq.output.length,
  };
}

/** The automaton a structured reply starts in (the schema was checked when the request was made), or null. */
function structuredStart(p: SamplingParams): JsonState | null {
  if (p.responseFormat === "json_object") return jsonStart(JSON_OBJECT);
  if (p.responseFormat === "json_schema") return jsonStart(compileSchema(p.jsonSchema));
  return null;
}
