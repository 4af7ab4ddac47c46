import type { KvAttention } from "../attention/kv-attention.js";
import type { RemoteAttentionService } from "../attention/remote-service.js";
import {
  type AttentionRecovery,
  type AttentionService,
  type AttentionServiceStats,
  type AttentionStep,
  AttentionWorkerLostError,
  type KvUsage,
  type OffloadStats,
} from "../attention/service.js";
import { gatherRows, SubStep, scatterRows } from "../attention/sub-step.js";
import { type OffloadBound, offloadBound, shouldOffload } from "./offload-policy.js";
import type { PrefillLink } from "./prefill-link.js";

/** A prefill instance as the decode instance uses it: prefill + attention executor. */
export interface PrefillInstance {
  readonly link: PrefillLink;
  /** Its attention executor, request-partitioned with this one worker. */
  readonly remote: RemoteAttentionService;
  /** Kernel threads its attention executor runs with (its bandwidth share, for the bound). */
  readonly attentionThreads: number;
}

/** Where a sequence's KV lives and where its prompt is prefilled. */
interface Placement {
  /** -1: the decode instance's own cache; i: offloaded to prefill instance i. */
  where: number;
  /** Kept sequences prefilled on instance i hold scratch blocks there until prefill ends (-1: none). */
  scratch: number;
  prefilled: boolean;
}

/** Per micro-batch: which rows are the decode instance's own, and buffers to run them apart. */
interface LocalPart {
  /** The decode instance's own sequences of the step. */
  readonly sub: SubStep;
  /** All rows are local: run on the step itself, no gather. */
  direct: boolean;
  readonly remoteActive: boolean[];
  readonly q: Float32Array;
  readonly k: Float32Array;
  readonly v: Float32Array;
  readonly out: Float32Array;
  qIn: Float32Array | null;
}

export interface HybridOptions {
  /** "pd": every request's KV is handed to the decode instance; "adrenaline": some stay offloaded. */
  readonly mode: "pd" | "adrenaline";
  /** Fixed N/M target instead of the load-aware bound. */
  readonly offloadRatio: number | null;
  readonly maxBatch: number;
  readonly decodeThreads: number;
  /** Micro-batches the engine keeps in flight. */
  readonly microBatches: number;
}

/**
 * The decode instance's attention service under PD disaggregation and Adrenaline: its own KV cache
 * for kept requests, and the prefill instances' attention executors for offloaded ones. Per layer
 * the offloaded rows go out in one message per instance (q early, then k/v), local attention runs
 * meanwhile, and the remote outputs land in their rows of `out` before the output projection.
 * Placement (and the executor's allocation) is decided at a request's first reservation, off the
 * per-layer path.
 */
export class HybridAttentionService implements AttentionService, AttentionRecovery {
  readonly blockSize: number;
  private readonly placement = new Map<number, Placement>();
  private readonly parts: LocalPart[];
  private readonly dead: boolean[];
  private kept = 0;
  private offloaded = 0;
  /** Decisions made, and the highest N/M reached right after one (for tests and reports). */
  decisions = 0;
  maxRatioSeen = 0;

  constructor(
    readonly local: KvAttention,
    readonly instances: readonly PrefillInstance[],
    private readonly o: HybridOptions,
  ) {
    this.blockSize = local.geometry.blockSize;
    this.dead = instances.map(() => false);
    const g = local.geometry;
    this.parts = Array.from({ length: o.microBatches }, () => ({
      sub: new SubStep(g.maxTokens, g.maxSeqs),
      direct: true,
      remoteActive: instances.map(() => false),
      q: new Float32Array(g.maxTokens * g.numHeads * g.headDim),
      k: new Float32Array(g.maxTokens * g.numKvHeads * g.headDim),
      v: new Float32Array(g.maxTokens * g.numKvHeads * g.headDim),
      out: new Float32Array(g.maxTokens * g.numHeads * g.headDim),
      qIn: null,
    }));
    instances.forEach((inst, i) => {
      inst.link.onLost(() => {
        this.dead[i] = true;
      });
    });
  }

  get description(): string {
    const alive = this.instances.filter((_, i) => !this.dead[i]).length;
    return `${this.o.mode}: decode instance + ${alive} prefill instance${alive === 1 ? "" : "s"}`;
  }

  /** The offload bound now, from the live instances' capacity and threads. */
  bound(): OffloadBound {
    const live = this.instances.filter((_, i) => !this.dead[i]);
    return offloadBound({
      prefillKvBlocks: live.map((x) => x.remote.usage()[0]?.totalBlocks ?? 0),
      decodeKvBlocks: this.local.allocator.numBlocks,
      prefillAttentionThreads: live.map((x) => x.attentionThreads),
      decodeThreads: this.o.decodeThreads,
      maxBatch: this.o.maxBatch,
      blocksPerRequest: Math.ceil(this.local.geometry.maxContext / this.blockSize),
    });
  }

  /** Lost prefill instances are not restarted; what they held is rebuilt elsewhere. */
  get recovery(): AttentionRecovery {
    return this;
  }

  stats(): AttentionServiceStats {
    return { offload: this.offloadStats() };
  }

  /** The offloading state, exported to /metrics. */
  offloadStats(): OffloadStats {
    const b = this.bound();
    return {
      ratio: this.kept > 0 ? this.offloaded / this.kept : 0,
      offloaded: this.offloaded,
      kept: this.kept,
      bound: b.bound,
      limit: this.limit(b),
    };
  }

  private limit(b: OffloadBound): number {
    if (this.o.mode !== "adrenaline") return 0;
    return this.o.offloadRatio ?? b.bound;
  }

  /** The live prefill instance with the most free executor blocks, or -1. */
  private pickInstance(): number {
    let best = -1;
    let free = -1;
    this.instances.forEach((x, i) => {
      if (this.dead[i] || !x.link.alive) return;
      const u = x.remote.usage()[0];
      const f = u ? u.totalBlocks - u.usedBlocks : 0;
      if (f > free) {
        best = i;
        free = f;
      }
    });
    return best;
  }

  /** Instance that prefills this sequence's next chunk, or -1 for the decode instance itself. */
  prefillTarget(seqId: number): number {
    const p = this.placement.get(seqId);
    if (!p || p.prefilled) return -1;
    const i = p.where >= 0 ? p.where : p.scratch;
    return i >= 0 && !this.dead[i] ? i : -1;
  }

  /** Whether the sequence's KV stays on a prefill instance. */
  isOffloaded(seqId: number): boolean {
    return (this.placement.get(seqId)?.where ?? -1) >= 0;
  }

  /** Its prompt is in: scratch blocks kept for a remote prefill are given back. */
  prefillDone(seqId: number): void {
    const p = this.placement.get(seqId);
    if (!p || p.prefilled) return;
    p.prefilled = true;
    if (p.scratch >= 0) {
      if (!this.dead[p.scratch]) this.instances[p.scratch]!.remote.release(seqId);
      p.scratch = -1;
    }
  }

  /**
   * `ahead` is held where the sequence's KV lives (the decode instance's cache, or the prefill
   * instance it is offloaded to); the scratch blocks a kept sequence's prompt is prefilled into
   * on a prefill instance hold only the step's tokens.
   */
  reserve(seqId: number, numTokens: number, ahead = 0): boolean {
    const p = this.placement.get(seqId);
    if (!p) return this.place(seqId, numTokens, ahead);
    if (p.where >= 0) return this.instances[p.where]!.remote.reserve(seqId, numTokens, ahead);
    if (!this.local.allocator.canReserve(seqId, numTokens + ahead)) return false;
    if (p.scratch >= 0 && !this.instances[p.scratch]!.remote.reserve(seqId, numTokens)) return false;
    return this.local.allocator.reserve(seqId, numTokens + ahead);
  }

  /** First reservation of a sequence: offload it, or keep it (prefilled remotely when possible). */
  private place(seqId: number, n: number, ahead: number): boolean {
    const i = this.pickInstance();
    const remote = i >= 0 ? this.instances[i]!.remote : null;
    if (remote && this.o.mode === "adrenaline") {
      this.decisions++;
      const limit = this.limit(this.bound());
      if (shouldOffload(this.kept, this.offloaded, limit) && remote.reserve(seqId, n, ahead)) {
        this.placement.set(seqId, { where: i, scratch: -1, prefilled: false });
        this.offloaded++;
        this.maxRatioSeen = Math.max(this.maxRatioSeen, this.offloaded / Math.max(1, this.kept));
        return true;
      }
    }
    if (!this.local.allocator.canReserve(seqId, n + ahead)) return false;
    const scratch = remote?.reserve(seqId, n) ? i : -1;
    this.local.allocator.reserve(seqId, n + ahead);
    this.placement.set(seqId, { where: -1, scratch, prefilled: false });
    this.kept++;
    return true;
  }

  release(seqId: number): void {
    const p = this.placement.get(seqId);
    if (!p) return;
    this.placement.delete(seqId);
    if (p.where >= 0) {
      if (!this.dead[p.where]) this.instances[p.where]!.remote.release(seqId);
      this.offloaded--;
      return;
    }
    this.local.allocator.release(seqId);
    if (p.scratch >= 0 && !this.dead[p.scratch]) this.instances[p.scratch]!.remote.release(seqId);
    this.kept--;
  }

  usage(): readonly KvUsage[] {
    const a = this.local.allocator;
    return [
      { worker: "decode", usedBlocks: a.usedBlocks, totalBlocks: a.numBlocks, blockSize: a.blockSize },
      ...this.instances.map((x) => {
        const u = x.remote.usage()[0];
        return {
          worker: x.link.name,
          usedBlocks: u?.usedBlocks ?? 0,
          totalBlocks: u?.totalBlocks ?? 0,
          blockSize: this.blockSize,
        };
      }),
    ];
  }

  /** A prefill instance was lost and sequences still count on it: the engine must rebuild them. */
  needsRecovery(): boolean {
    for (const p of this.placement.values()) if (this.lostBy(p)) return true;
    return false;
  }

  private lostBy(p: Placement): boolean {
    return (p.where >= 0 && this.dead[p.where]!) || (!p.prefilled && p.scratch >= 0 && this.dead[p.scratch]!);
  }

  /**
   * Sequences whose KV (or unfinished prefill) was on a lost prefill instance: forgotten here, to be
   * rebuilt from their tokens (locally, or on another prefill instance). A lost instance is not
   * restarted; the others and the decode instance's own requests carry on untouched.
   */
  async recover(seqIds: Iterable<number>): Promise<number[]> {
    void seqIds;
    const affected: number[] = [];
    for (const [id, p] of this.placement) {
      if (!this.lostBy(p)) continue;
      if (p.where < 0) {
        p.scratch = -1;
        this.release(id);
      } else {
        this.placement.delete(id);
        this.offloaded--;
      }
      affected.push(id);
    }
    return affected;
  }

  private part(step: AttentionStep): LocalPart {
    const part = this.parts[step.microBatch];
    if (!part)
      throw new Error(`micro-batch ${step.microBatch} is outside the ${this.parts.length} configured`);
    return part;
  }

  /** The placement of a sequence in a step; one whose holder was lost fails the step. */
  private placed(seqId: number): Placement {
    const p = this.placement.get(seqId);
    if (!p) throw new Error(`attention: sequence ${seqId} has no KV reserved`);
    if (this.lostBy(p)) {
      const link = this.instances[p.where >= 0 ? p.where : p.scratch]!.link;
      throw new AttentionWorkerLostError(link.name, link.lostReason || "connection closed");
    }
    return p;
  }

  /** At layer 0: splits the step into local rows and marks the instances with offloaded rows. */
  private split(step: AttentionStep, part: LocalPart): void {
    const sub = part.sub;
    sub.reset(step.microBatch);
    part.remoteActive.fill(false);
    for (let s = 0; s < step.nSeqs; s++) {
      const p = this.placed(step.seqIds[s]!);
      if (p.where >= 0) part.remoteActive[p.where] = true;
      else sub.addSeq(step, s);
    }
    part.direct = sub.nTokens === step.nTokens;
    if (sub.nTokens > 0) this.local.prepare(part.direct ? step : sub);
  }

  beginLayer(layer: number, step: AttentionStep, q: Float32Array): void {
    const part = this.part(step);
    if (layer === 0) this.split(step, part);
    part.qIn = q;
    for (let i = 0; i < this.instances.length; i++)
      if (part.remoteActive[i]) this.instances[i]!.remote.beginLayer(layer, step, q);
  }

  finishLayer(
    layer: number,
    step: AttentionStep,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
  ): void | Promise<void> {
    const part = this.part(step);
    let pending: Promise<void>[] | null = null;
    for (let i = 0; i < this.instances.length; i++) {
      if (!part.remoteActive[i]) continue;
      const done = this.instances[i]!.remote.finishLayer(layer, step, k, v, out);
      if (done) (pending ??= []).push(done);
    }
    // Local attention runs while the offloaded rows are on their way.
    const sub = part.sub;
    if (part.direct) this.local.run(layer, step, part.qIn!, k, v, out);
    else if (sub.nTokens > 0) this.runGathered(layer, part, k, v, out);
    if (!pending) return;
    return pending.length === 1 ? pending[0] : Promise.all(pending).then(() => undefined);
  }

  private runGathered(
    layer: number,
    part: LocalPart,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
  ): void {
    const g = this.local.geometry;
    const qw = g.numHeads * g.headDim;
    const kw = g.numKvHeads * g.headDim;
    const { sub } = part;
    const n = sub.nTokens;
    gatherRows(part.q, part.qIn!, sub.rows, n, qw, 0, qw);
    gatherRows(part.k, k, sub.rows, n, kw, 0, kw);
    gatherRows(part.v, v, sub.rows, n, kw, 0, kw);
    this.local.run(layer, sub, part.q, part.k, part.v, part.out);
    scatterRows(out, part.out, sub.rows, n, qw, 0, qw);
  }

  async close(): Promise<void> {
    await Promise.all(this.instances.map((x) => x.remote.close().catch(() => undefined)));
    await Promise.all(this.instances.map((x) => x.link.close()));
  }
}
