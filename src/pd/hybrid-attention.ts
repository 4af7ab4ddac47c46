import type { KvAttention } from "../attention/kv-attention.js";
import { AttentionWorkerLostError, type RemoteAttentionService } from "../attention/remote-service.js";
import type { AttentionService, AttentionStep, KvUsage } from "../attention/service.js";
import type { OffloadStats } from "../engine/api.js";
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

/** Per step: which rows are the decode instance's own, and buffers to run them apart. */
interface StepPart {
  readonly step: {
    nTokens: number;
    nSeqs: number;
    readonly seqIds: Int32Array;
    readonly seqStart: Int32Array;
    readonly positions: Int32Array;
  };
  readonly rows: Int32Array;
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
}

/**
 * The decode instance's attention service under PD disaggregation and Adrenaline: its own KV cache
 * for kept requests, and the prefill instances' attention executors for offloaded ones. Per layer
 * the offloaded rows go out in one message per instance (q early, then k/v), local attention runs
 * meanwhile, and the remote outputs land in their rows of `out` before the output projection.
 * Placement (and the executor's allocation) is decided at a request's first reservation, off the
 * per-layer path.
 */
export class HybridAttentionService implements AttentionService {
  readonly blockSize: number;
  private readonly placement = new Map<number, Placement>();
  private readonly parts = new WeakMap<AttentionStep, StepPart>();
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

  /** EngineStats.offload: read by the engine for /metrics. */
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

  reserve(seqId: number, numTokens: number): boolean {
    const p = this.placement.get(seqId);
    if (!p) return this.place(seqId, numTokens);
    if (p.where >= 0) return this.instances[p.where]!.remote.reserve(seqId, numTokens);
    if (!this.local.allocator.canReserve(seqId, numTokens)) return false;
    if (p.scratch >= 0 && !this.instances[p.scratch]!.remote.reserve(seqId, numTokens)) return false;
    return this.local.allocator.reserve(seqId, numTokens);
  }

  /** First reservation of a sequence: offload it, or keep it (prefilled remotely when possible). */
  private place(seqId: number, n: number): boolean {
    const i = this.pickInstance();
    const remote = i >= 0 ? this.instances[i]!.remote : null;
    if (remote && this.o.mode === "adrenaline") {
      this.decisions++;
      const limit = this.limit(this.bound());
      if (shouldOffload(this.kept, this.offloaded, limit) && remote.reserve(seqId, n)) {
        this.placement.set(seqId, { where: i, scratch: -1, prefilled: false });
        this.offloaded++;
        this.maxRatioSeen = Math.max(this.maxRatioSeen, this.offloaded / Math.max(1, this.kept));
        return true;
      }
    }
    if (!this.local.allocator.canReserve(seqId, n)) return false;
    const scratch = remote?.reserve(seqId, n) ? i : -1;
    this.local.allocator.reserve(seqId, n);
    this.placement.set(seqId, { where: -1, scratch, prefilled: false });
    this.kept++;
    return true;
  }

  canReserve(seqId: number, numTokens: number): boolean {
    const p = this.placement.get(seqId);
    if (p && p.where >= 0) return this.instances[p.where]!.remote.canReserve(seqId, numTokens);
    return this.local.allocator.canReserve(seqId, numTokens);
  }

  blocksNeeded(seqId: number, numTokens: number): number {
    const p = this.placement.get(seqId);
    if (p && p.where >= 0) return this.instances[p.where]!.remote.blocksNeeded(seqId, numTokens);
    return this.local.allocator.blocksNeeded(seqId, numTokens);
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

  private part(step: AttentionStep): StepPart {
    let part = this.parts.get(step);
    if (!part) {
      const g = this.local.geometry;
      const qw = g.maxTokens * g.numHeads * g.headDim;
      const kw = g.maxTokens * g.numKvHeads * g.headDim;
      part = {
        step: {
          nTokens: 0,
          nSeqs: 0,
          seqIds: new Int32Array(g.maxSeqs),
          seqStart: new Int32Array(g.maxSeqs + 1),
          positions: new Int32Array(g.maxTokens),
        },
        rows: new Int32Array(g.maxTokens),
        direct: true,
        remoteActive: this.instances.map(() => false),
        q: new Float32Array(qw),
        k: new Float32Array(kw),
        v: new Float32Array(kw),
        out: new Float32Array(qw),
        qIn: null,
      };
      this.parts.set(step, part);
    }
    return part;
  }

  /** At layer 0: splits the step into local rows and per-instance offloaded rows. */
  private split(step: AttentionStep, part: StepPart): void {
    const sub = part.step;
    sub.nSeqs = 0;
    sub.nTokens = 0;
    sub.seqStart[0] = 0;
    part.remoteActive.fill(false);
    for (let s = 0; s < step.nSeqs; s++) {
      const id = step.seqIds[s]!;
      const p = this.placement.get(id);
      if (!p) throw new Error(`attention: sequence ${id} has no KV reserved`);
      if (this.lostBy(p)) {
        const i = p.where >= 0 ? p.where : p.scratch;
        const link = this.instances[i]!.link;
        throw new AttentionWorkerLostError(link.name, link.lostReason || "connection closed");
      }
      if (p.where >= 0) {
        part.remoteActive[p.where] = true;
        continue;
      }
      sub.seqIds[sub.nSeqs] = id;
      for (let t = step.seqStart[s]!; t < step.seqStart[s + 1]!; t++) {
        part.rows[sub.nTokens] = t;
        sub.positions[sub.nTokens++] = step.positions[t]!;
      }
      sub.seqStart[++sub.nSeqs] = sub.nTokens;
    }
    part.direct = sub.nTokens === step.nTokens;
    if (sub.nTokens > 0) this.local.prepare(part.direct ? step : (sub as AttentionStep));
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
      (pending ??= []).push(this.instances[i]!.remote.finishLayer(layer, step, k, v, out));
    }
    // Local attention runs while the offloaded rows are on their way.
    const sub = part.step;
    if (part.direct) this.local.run(layer, step, part.qIn!, k, v, out);
    else if (sub.nTokens > 0) this.runGathered(layer, part, k, v, out);
    if (!pending) return;
    return pending.length === 1 ? pending[0] : Promise.all(pending).then(() => undefined);
  }

  private runGathered(
    layer: number,
    part: StepPart,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
  ): void {
    const g = this.local.geometry;
    const qw = g.numHeads * g.headDim;
    const kw = g.numKvHeads * g.headDim;
    const n = part.step.nTokens;
    const q = part.qIn!;
    for (let r = 0; r < n; r++) {
      const t = part.rows[r]!;
      copy(part.q, r * qw, q, t * qw, qw);
      copy(part.k, r * kw, k, t * kw, kw);
      copy(part.v, r * kw, v, t * kw, kw);
    }
    this.local.run(layer, part.step as AttentionStep, part.q, part.k, part.v, part.out);
    for (let r = 0; r < n; r++) copy(out, part.rows[r]! * qw, part.out, r * qw, qw);
  }

  async close(): Promise<void> {
    await Promise.all(this.instances.map((x) => x.remote.close().catch(() => undefined)));
    await Promise.all(this.instances.map((x) => x.link.close()));
  }
}

function copy(dst: Float32Array, d: number, src: Float32Array, s: number, n: number): void {
  for (let i = 0; i < n; i++) dst[d + i] = src[s + i]!;
}
