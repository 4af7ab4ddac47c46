import type { ShmNative } from "../transport/shm-native.js";
import { DUE_READS, dueSlice } from "./due-slice.js";
import type { SliceExecutor } from "./executor.js";
import { B, H, type ModelPlane, type PlaneBatch, RW } from "./model-plane.js";
import type { PlaneAttention } from "./plane-attention.js";
import { PlanePeerLostError, type ReplicaPlaneSync } from "./plane-sync.js";
import type { ModelStep } from "./step.js";

export interface ReplicaLimits {
  readonly vocabSize: number;
  readonly maxContext: number;
  /** Busy-poll before sleeping (µs). */
  readonly spinUs: number;
}

/** How long one sleep lasts before the loop looks again (and lets its event loop run). */
const IDLE_SLEEP_MS = 20;
const ATTENTION_SLEEP_MS = 1;
/** The event loop (control messages) gets a turn at least this often, busy or not. */
const YIELD_EVERY_MS = 10;

/**
 * A model worker's loop: runs every slice that the rotation gives this replica, as soon as its
 * input is there. Slice 0 of a micro-batch starts when the front end launches its step; slice
 * k > 0 when the attention workers have answered layer k − 1 (posted by whichever replica ran
 * slice k − 1). The micro-batch's activations live in the shared plane, so nothing moves between
 * replicas but the right to run the next slice. The replica holds no per-request state.
 */
export class ReplicaLoop {
  private readonly steps: ModelStep[];
  /** Per micro-batch, the object that posts q when a slice's q is complete (made once). */
  private readonly qPosters: { beginLayer(layer: number, step: ModelStep, q: Float32Array): void }[];
  private readonly words: Int32Array;
  private readonly seconds: Float64Array;
  private stopped = false;
  private waitMask = 0;
  private seen = 0;
  /** A micro-batch's words as last read (DUE_READS order), reused on every pass. */
  private readonly seenWords = new Int32Array(DUE_READS.length);
  private lastYield = 0;
  /** The run epoch this loop last ran under (a change means the front end recovered in between). */
  private runEpoch: number;

  constructor(
    private readonly executor: SliceExecutor,
    private readonly plane: ModelPlane,
    private attention: PlaneAttention,
    readonly replica: number,
    /** The lease the front end gave this replica (its line's lease word while it is wanted). */
    private readonly lease: number,
    private readonly limits: ReplicaLimits,
    private readonly shm: ShmNative,
    /** Over TCP (model workers on other hosts): sends what the others must see of this copy's writes. */
    private readonly sync: ReplicaPlaneSync | null = null,
  ) {
    this.words = plane.replicaWords(replica);
    this.seconds = plane.replicaSeconds(replica);
    this.steps = plane.batches.map((b, j) => {
      executor.adoptBuffers(j, b.buffers);
      return {
        microBatch: j,
        nTokens: 0,
        nSeqs: 0,
        nLogits: 0,
        tokens: b.tokens,
        positions: b.positions,
        seqIds: b.seqIds,
        seqStart: b.seqStart,
        logitRows: b.logitRows,
      };
    });
    this.qPosters = plane.batches.map((b) => ({
      beginLayer: (layer: number, step: ModelStep, q: Float32Array) =>
        this.attention.postQ(b, step, layer, q),
    }));
    if (!this.leased())
      throw new Error(`replica ${replica}: the plane holds another lease (a newer front end?)`);
    this.runEpoch = Atomics.load(plane.header, H.runEpoch);
    Atomics.store(this.words, RW.pid, process.pid);
  }

  /** New attention workers (after the front end laid attention out again); only while paused. */
  replaceAttention(attention: PlaneAttention): void {
    this.attention.close();
    this.attention = attention;
  }

  stop(): void {
    this.stopped = true;
  }

  /**
   * False once the front end moved the replica's lease on (it gave this replica up, e.g. after a
   * stall it could not end): the loop then stops without touching the plane again.
   */
  private leased(): boolean {
    if (Atomics.load(this.words, RW.lease) === this.lease) return true;
    this.stopped = true;
    return false;
  }

  /** Whether the loop stopped because its lease moved on (not by stop()). */
  get evicted(): boolean {
    return this.stopped && Atomics.load(this.words, RW.lease) !== this.lease;
  }

  /** Runs until stopped, yielding to the event loop every few milliseconds. */
  async run(): Promise<void> {
    while (!this.stopped) {
      if (this.runReady() === 0 && !this.stopped) this.waitForWork();
      if (performance.now() - this.lastYield >= YIELD_EVERY_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        this.lastYield = performance.now();
      }
    }
  }

  /** One pass over the micro-batches: runs each slice that is this replica's and ready. */
  runReady(): number {
    const h = this.plane.header;
    // Read before looking: a ring after this makes the wait that may follow return at once.
    this.seen = Atomics.load(h, H.doorbell);
    if (!this.leased()) return 0;
    const pause = Atomics.load(h, H.pauseEpoch);
    if (pause !== Atomics.load(h, H.runEpoch)) {
      // The front end is replacing a replica: take nothing new, and say so (once).
      if (Atomics.load(this.words, RW.ackEpoch) !== pause) {
        Atomics.store(this.words, RW.ackEpoch, pause);
        this.plane.ring(this.shm, H.frontDoorbell);
        try {
          this.sync?.acked();
        } catch {
          // The front end is unreachable: its link's loss voids this replica's lease.
        }
      }
      return 0;
    }
    const run = Atomics.load(h, H.runEpoch);
    if (run !== this.runEpoch) {
      // Resumed after a recovery: the front end settled the failed steps; replies this replica
      // received for them and never took are void.
      this.runEpoch = run;
      this.attention.resync();
    }
    let ran = 0;
    this.waitMask = 0;
    const R = this.plane.shape.replicas;
    for (let j = 0; j < this.plane.batches.length; j++) {
      const b = this.plane.batches[j]!;
      // The order of these reads is what keeps a frame landing meanwhile harmless (due-slice.ts).
      const seen = this.seenWords;
      for (let i = 0; i < DUE_READS.length; i++) seen[i] = Atomics.load(b.words, DUE_READS[i]!);
      const k = dueSlice(seen, j, R, this.replica);
      if (k < 0) continue;
      const seq = seen[0]!;
      if (k > 0 && !this.attention.ready(b, j)) {
        this.waitMask |= 1 << j;
        continue;
      }
      if (!this.leased()) return ran;
      this.runItem(j, b, seq, k);
      ran++;
    }
    return ran;
  }

  private runItem(j: number, b: PlaneBatch, seq: number, k: number): void {
    const step = this.steps[j]!;
    const t0 = performance.now();
    try {
      step.nTokens = Atomics.load(b.words, B.nTokens);
      step.nSeqs = Atomics.load(b.words, B.nSeqs);
      step.nLogits = Atomics.load(b.words, B.nLogits);
      if (k === 0) this.check(b, step);
      const ex = this.executor;
      if (k > 0) {
        const prev = ex.sliced.slices[k - 1]!.attention!;
        this.seconds[2]! += this.attention.take(b, j, ex.tensorOf(j, prev.out)) / 1e6;
      }
      const att = ex.runSlice(step, k, this.qPosters[j]!);
      if (att) this.attention.postKv(b, step, att.layer, ex.tensorOf(j, att.k), ex.tensorOf(j, att.v), k + 1);
      Atomics.store(b.words, B.sliceDone, k + 1);
      Atomics.add(this.words, RW.slices, 1);
      this.seconds[0]! += (performance.now() - t0) / 1000;
      if (!att) {
        Atomics.store(b.words, B.logitsSeq, seq);
        this.plane.ring(this.shm, H.frontDoorbell);
        this.sync?.logits(j, seq);
      } else {
        // The next slice is another replica's: it may sleep on the doorbell until sliceDone moves.
        if (this.plane.shape.replicas > 1) this.plane.ring(this.shm);
        this.sync?.sliceDone(j, k, seq);
      }
    } catch (e) {
      this.plane.setError(j, `model worker ${this.replica}, slice ${k}: ${(e as Error).message}`);
      if (e instanceof PlanePeerLostError) Atomics.store(b.words, B.lostPeer, 1 + e.replica);
      Atomics.store(b.words, B.failedSeq, seq);
      this.plane.ring(this.shm, H.frontDoorbell);
      this.plane.ring(this.shm);
      try {
        this.sync?.failed(j, seq);
      } catch {
        // The front end is unreachable: it sees this replica's loss instead.
      }
    }
  }

  /** The step as the front end wrote it: every count and index in range (ids index the embedding). */
  private check(b: PlaneBatch, step: ModelStep): void {
    const { maxTokens, maxSeqs, targets } = this.plane.shape;
    const n = step.nTokens;
    const bad = (what: string) => {
      throw new Error(`malformed step: ${what}`);
    };
    if (!(n >= 1 && n <= maxTokens)) bad(`${n} tokens`);
    if (!(step.nSeqs >= 1 && step.nSeqs <= Math.min(maxSeqs, n))) bad(`${step.nSeqs} sequences`);
    // A speculative step has a row for each of a sequence's draft tokens too: at most a row a token.
    if (!(step.nLogits >= 0 && step.nLogits <= Math.min(maxSeqs, n))) bad(`${step.nLogits} logit rows`);
    for (let t = 0; t < n; t++) {
      if (!(b.tokens[t]! >= 0 && b.tokens[t]! < this.limits.vocabSize)) bad(`token id ${b.tokens[t]}`);
      if (!(b.positions[t]! >= 0 && b.positions[t]! < this.limits.maxContext))
        bad(`position ${b.positions[t]}`);
    }
    if (b.seqStart[0] !== 0 || b.seqStart[step.nSeqs] !== n) bad("sequence ranges do not cover the tokens");
    for (let s = 0; s < step.nSeqs; s++)
      if (b.seqStart[s]! >= b.seqStart[s + 1]!) bad("empty sequence range");
    for (let r = 0; r < step.nLogits; r++)
      if (!(b.logitRows[r]! >= 0 && b.logitRows[r]! < n)) bad("logit row");
    for (let t = 0; t < targets; t++) {
      const m = b.words[B.subTokens + t]!;
      if (!(m >= 0 && m <= n)) bad(`attention worker ${t} rows`);
      const rows = b.rows[t]!;
      for (let i = 0; i < m; i++)
        if (!(rows[i]! >= 0 && rows[i]! < n)) bad(`attention worker ${t} row ${rows[i]}`);
    }
  }

  /**
   * Nothing of this replica's is ready: wait for an attention reply it needs (a native wait on the
   * attention workers' doorbells), else for the plane's doorbell (a launch, another replica's slice).
   */
  private waitForWork(): void {
    const t0 = performance.now();
    if (this.waitMask !== 0) {
      this.attention.wait(this.waitMask, ATTENTION_SLEEP_MS);
      // Time a slice of this replica's waited on attention (idle time is not counted).
      this.seconds[1]! += (performance.now() - t0) / 1000;
    } else {
      const h = this.plane.header;
      const seen = this.seen;
      const spinUntil = t0 + this.limits.spinUs / 1000;
      while (performance.now() < spinUntil) if (Atomics.load(h, H.doorbell) !== seen) return;
      this.plane.sleep(this.shm, H.doorbell, seen, IDLE_SLEEP_MS);
    }
  }
}
