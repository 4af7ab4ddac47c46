import type { AttentionDrive, AttentionService } from "../attention/service.js";
import type { ModelExecutor } from "../runtime/model-executor.js";
import { createModelStep, type ModelStep } from "../runtime/step.js";
import type { ScheduledChunk, Scheduler } from "./scheduler.js";
import type { Sequence } from "./sequence.js";

/** A micro-batch's copy of one scheduled chunk (the scheduler reuses its own between calls). */
export interface BatchChunk {
  seq: Sequence;
  start: number;
  count: number;
  sample: boolean;
  /** The chunk's last `drafts` tokens are its sequence's draft (speculative decoding). */
  drafts: number;
}

/** How a launched micro-batch's forward pass ended. */
export type BatchOutcome =
  | { readonly ok: true; readonly logits: Float32Array }
  | { readonly ok: false; readonly error: unknown };

/**
 * One micro-batch: its id (carried in its step, so the executor and the attention service find
 * their buffers for it), the chunks it runs, and the forward pass in flight.
 */
export interface MicroBatch {
  readonly id: number;
  readonly step: ModelStep;
  readonly chunks: BatchChunk[];
  nChunks: number;
  /** The sequences sampled from this batch's logit rows, in row order. */
  readonly sampleRow: Sequence[];
  /** Per sampled sequence, its draft tokens: its rows are one, then one a draft token. */
  readonly sampleDrafts: number[];
  /** The forward pass in flight, or null when the batch is free. */
  pending: Promise<MicroBatch> | null;
  outcome: BatchOutcome | null;
  /** Launch order, so finished batches are landed oldest first. */
  launch: number;
}

/**
 * Staggered pipelining: `depth` micro-batches, each launched as soon as it is free and landed in
 * launch order. While one is sampled and launched again the others stay in flight, so the
 * attention side is kept busy and no step pays a pipeline fill and drain.
 */
export class MicroBatchPipeline {
  readonly batches: MicroBatch[];
  private launches = 0;
  /** The in-flight batches' promises, gathered for each race (reused). */
  private readonly racing: Promise<MicroBatch>[] = [];
  /** The batches one launchFree schedules, before it launches them (their first n entries). */
  private readonly launching: MicroBatch[] = [];

  constructor(
    depth: number,
    maxTokensPerStep: number,
    maxRunning: number,
    maxLogitRows: number,
    private readonly executor: ModelExecutor,
    private readonly attention: AttentionService,
  ) {
    this.batches = Array.from({ length: Math.max(1, depth) }, (_, id) => ({
      id,
      step: createModelStep(maxTokensPerStep, maxRunning, id, maxLogitRows),
      chunks: [],
      nChunks: 0,
      sampleRow: [],
      sampleDrafts: [],
      pending: null,
      outcome: null,
      launch: 0,
    }));
  }

  get depth(): number {
    return this.batches.length;
  }

  /** Micro-batches whose forward pass is running (or finished and not yet landed). */
  inFlight(): number {
    let n = 0;
    for (const b of this.batches) if (b.pending) n++;
    return n;
  }

  /**
   * Schedules each free micro-batch from the sequences not in flight and starts its forward pass.
   * A batch takes at most its share of the runnable sequences and of the step token budget, so the
   * micro-batches stay balanced as sequences come and go.
   */
  launchFree(scheduler: Scheduler, maxTokensPerStep: number): void {
    const depth = this.batches.length;
    const budget = Math.ceil(maxTokensPerStep / depth);
    const share = Math.max(1, Math.ceil((scheduler.running.length + scheduler.waiting.length) / depth));
    // Every free batch is scheduled first, then launched: a batch launched with no other in flight
    // and none launched beside it runs alone until it lands (launches happen only here), so its
    // layers may be waited for in place (step.alone), without the drive's promise per layer.
    const launching = this.launching;
    let n = 0;
    for (const batch of this.batches) {
      if (batch.pending) continue;
      const chunks = scheduler.schedule(budget, share);
      if (chunks.length === 0) continue;
      this.fill(batch, chunks);
      launching[n++] = batch;
    }
    const alone = n === 1 && this.inFlight() === 0;
    for (let i = 0; i < n; i++) {
      const batch = launching[i]!;
      batch.step.alone = alone;
      batch.outcome = null;
      batch.launch = this.launches++;
      batch.pending = this.executor.forward(batch.step, this.attention).then(
        (logits) => {
          batch.outcome = { ok: true, logits };
          return batch;
        },
        (error: unknown) => {
          batch.outcome = { ok: false, error };
          return batch;
        },
      );
    }
  }

  /** Waits until some micro-batch in flight has finished; returns the oldest finished one. */
  /** Who completes forward passes only when driven: model workers, else the attention service. */
  private get drive(): AttentionDrive | null {
    return this.executor.drive ?? this.attention.drive ?? null;
  }

  async next(): Promise<MicroBatch> {
    if (this.drive) {
      await this.driveUntil(() => this.batches.some((b) => b.pending !== null && b.outcome !== null));
      return this.oldestFinished();
    }
    const racing = this.racing;
    racing.length = 0;
    for (const b of this.batches) if (b.pending) racing.push(b.pending);
    await Promise.race(racing);
    return this.oldestFinished();
  }

  /** Waits for every micro-batch in flight. */
  async settleAll(): Promise<void> {
    if (this.drive) await this.driveUntil(() => this.unfinished() === 0);
    await Promise.all(this.batches.map((b) => b.pending));
  }

  /** Batches whose forward pass has not ended yet. */
  private unfinished(): number {
    let n = 0;
    for (const b of this.batches) if (b.pending && !b.outcome) n++;
    return n;
  }

  /**
   * Drives an attention service whose layers complete only when pumped (the native data plane):
   * when every unfinished batch waits on attention, one native wait lets some go on; otherwise a
   * batch can run, and a microtask turn lets it run up to its next wait. No event-loop turn is
   * taken unless the service stops needing a drive (after a loss the exchange may fall back to
   * messages, whose replies arrive through the event loop).
   */
  private async driveUntil(done: () => boolean): Promise<void> {
    let idle = 0;
    while (!done()) {
      const drive = this.drive;
      if (!drive) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      const blocked = drive.blocked();
      if (blocked > 0 && blocked === this.unfinished()) {
        drive.pump();
        idle = 0;
      } else if (++idle > MAX_IDLE_TURNS) {
        // Nothing moved for many turns: let the event loop run (a timer, a message) once.
        await new Promise<void>((resolve) => setImmediate(resolve));
        idle = 0;
        continue;
      }
      await Promise.resolve();
    }
  }

  /** Of the batches whose forward pass has ended, the one launched first (steps land in order). */
  oldestFinished(): MicroBatch {
    let best: MicroBatch | null = null;
    for (const b of this.batches) if (b.pending && b.outcome && (!best || b.launch < best.launch)) best = b;
    if (!best) throw new Error("engine: no micro-batch has finished");
    return best;
  }

  /** A finished batch is free again: its sequences may be scheduled; returns how it ended. */
  release(batch: MicroBatch): BatchOutcome {
    const outcome = batch.outcome!;
    batch.pending = null;
    batch.outcome = null;
    for (let i = 0; i < batch.nChunks; i++) batch.chunks[i]!.seq.inFlight = false;
    return outcome;
  }

  /** Copies the scheduler's chunks into the batch (the scheduler reuses its own) and fills its step. */
  private fill(batch: MicroBatch, chunks: readonly ScheduledChunk[]): void {
    batch.nChunks = chunks.length;
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!;
      let own = batch.chunks[i];
      if (!own) {
        own = { seq: c.seq, start: 0, count: 0, sample: false, drafts: 0 };
        batch.chunks.push(own);
      }
      own.seq = c.seq;
      own.start = c.start;
      own.count = c.count;
      own.sample = c.sample;
      own.drafts = c.drafts;
      c.seq.inFlight = true;
    }
    fillStep(batch);
  }
}

/** Microtask turns without progress before the pipeline yields one event-loop turn. */
const MAX_IDLE_TURNS = 256;

/**
 * Writes a batch's chunks into its step: tokens, positions, sequence ranges, sampling rows (a
 * drafted chunk's last real token and each draft token get one).
 */
function fillStep(batch: MicroBatch): void {
  const st = batch.step;
  let t = 0;
  st.nLogits = 0;
  batch.sampleRow.length = 0;
  batch.sampleDrafts.length = 0;
  for (let s = 0; s < batch.nChunks; s++) {
    const { seq, start, count, sample, drafts } = batch.chunks[s]!;
    st.seqIds[s] = seq.id;
    st.seqStart[s] = t;
    for (let j = 0; j < count; j++) {
      st.tokens[t] = seq.stepToken(start + j);
      st.positions[t] = start + j;
      t++;
    }
    if (sample) {
      batch.sampleRow.push(seq);
      batch.sampleDrafts.push(drafts);
      for (let r = t - 1 - drafts; r < t; r++) st.logitRows[st.nLogits++] = r;
    }
  }
  st.seqStart[batch.nChunks] = t;
  st.nSeqs = batch.nChunks;
  st.nTokens = t;
}
