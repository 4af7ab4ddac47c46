import { type OffloadBound, offloadBound, shouldOffload } from "../../util/offload-bound.js";
import { CachingBlockPool } from "./caching-pool.js";
import type { BlockPool } from "./kv-blocks.js";

/**
 * Where the replica's sequences keep their KV, as the runtime's attention services decide it:
 * one pool (colocated, attention workers), or PD/Adrenaline's hybrid of the decode instance's own
 * cache and the prefill instances' attention executors.
 */
export interface KvSpace {
  /** [0, tokens) and `ahead` more where the sequence's KV lives (the runtime's KvAdmission.reserve). */
  reserve(seqId: number, tokens: number, ahead?: number): boolean;
  release(seqId: number): void;
  /** Prefill instance that computes this sequence's next prompt chunk, or -1 for the engine itself. */
  prefillTarget(seqId: number): number;
  /** Prefill instance holding this sequence's KV (its decode attention runs there), or -1. */
  offloadedTo(seqId: number): number;
  /** Its prompt is in (the runtime's PdExecutor calls this after the chunk that samples). */
  prefillDone(seqId: number): void;
  /** Prefix caching (the runtime's PrefixCaching), where this space offers it. */
  readonly prefix: ReplicaPrefix | null;
}

/** The runtime's PrefixCaching on the replica's block keys (numbers standing for its hashes). */
export interface ReplicaPrefix {
  /** Tokens of a block, the unit of what is cached. */
  readonly blockSize: number;
  /** Gives a sequence holding no KV the cached blocks of its longest cached run of `keys`; how many. */
  attach(seqId: number, keys: readonly number[]): number;
  /** The sequence's block `index` is full and written: keep it under `key`. */
  publish(seqId: number, index: number, key: number): void;
}

/** One pool: the engine's cache, or its attention workers' (their accounting is mirrored exactly). */
export class SinglePool implements KvSpace {
  readonly prefix: ReplicaPrefix | null;
  constructor(readonly pool: BlockPool | CachingBlockPool) {
    const p = pool;
    this.prefix =
      p instanceof CachingBlockPool
        ? {
            blockSize: p.blockSize,
            attach: (seqId, keys) => {
              const run = p.lookupRun(keys);
              p.attach(seqId, run);
              return run.length;
            },
            publish: (seqId, index, key) => p.retain(seqId, index, key),
          }
        : null;
  }
  reserve(seqId: number, tokens: number, ahead = 0): boolean {
    return this.pool.reserve(seqId, tokens + ahead);
  }
  release(seqId: number): void {
    this.pool.release(seqId);
  }
  prefillTarget(): number {
    return -1;
  }
  offloadedTo(): number {
    return -1;
  }
  prefillDone(): void {}
}

export interface HybridConfig {
  readonly mode: "pd" | "adrenaline";
  /** Fixed N/M limit instead of the load-aware bound (--offload-ratio). */
  readonly offloadRatio: number | null;
  readonly maxBatch: number;
  readonly decodeThreads: number;
  readonly executorThreads: number;
  /** Blocks one request takes at the maximum sequence length. */
  readonly blocksPerRequest: number;
}

interface Placed {
  where: number;
  scratch: number;
  prefilled: boolean;
}

/**
 * PD / Adrenaline KV placement, step for step what pd/hybrid-attention.ts does: at a sequence's
 * first reservation it is offloaded to the prefill instance with the most free executor blocks
 * when shouldOffload(kept, offloaded, bound) says so (the same functions the runtime calls), else
 * kept, with scratch blocks on that instance while its prompt is prefilled there; a kept sequence
 * whose scratch does not fit is prefilled by the decode instance itself.
 */
export class HybridSpace implements KvSpace {
  /** The runtime's hybrid service caches no prefixes. */
  readonly prefix = null;
  private readonly placed = new Map<number, Placed>();
  kept = 0;
  offloaded = 0;
  decisions = 0;
  maxRatioSeen = 0;

  constructor(
    readonly local: BlockPool,
    readonly executors: readonly BlockPool[],
    private readonly c: HybridConfig,
  ) {}

  bound(): OffloadBound {
    return offloadBound({
      prefillKvBlocks: this.executors.map((e) => e.numBlocks),
      decodeKvBlocks: this.local.numBlocks,
      prefillAttentionThreads: this.executors.map(() => this.c.executorThreads),
      decodeThreads: this.c.decodeThreads,
      maxBatch: this.c.maxBatch,
      blocksPerRequest: this.c.blocksPerRequest,
    });
  }

  limit(): number {
    return this.c.mode === "adrenaline" ? (this.c.offloadRatio ?? this.bound().bound) : 0;
  }

  private pickInstance(): number {
    let best = -1;
    let free = -1;
    this.executors.forEach((e, i) => {
      const f = e.numBlocks - e.usedBlocks;
      if (f > free) {
        best = i;
        free = f;
      }
    });
    return best;
  }

  reserve(seqId: number, tokens: number, ahead = 0): boolean {
    const p = this.placed.get(seqId);
    if (!p) return this.place(seqId, tokens, ahead);
    if (p.where >= 0) return this.executors[p.where]!.reserve(seqId, tokens + ahead);
    if (!this.local.canReserve(seqId, tokens + ahead)) return false;
    if (p.scratch >= 0 && !this.executors[p.scratch]!.reserve(seqId, tokens)) return false;
    return this.local.reserve(seqId, tokens + ahead);
  }

  private place(seqId: number, tokens: number, ahead: number): boolean {
    const i = this.pickInstance();
    const remote = i >= 0 ? this.executors[i]! : null;
    if (remote && this.c.mode === "adrenaline") {
      this.decisions++;
      if (shouldOffload(this.kept, this.offloaded, this.limit()) && remote.reserve(seqId, tokens + ahead)) {
        this.placed.set(seqId, { where: i, scratch: -1, prefilled: false });
        this.offloaded++;
        this.maxRatioSeen = Math.max(this.maxRatioSeen, this.offloaded / Math.max(1, this.kept));
        return true;
      }
    }
    if (!this.local.canReserve(seqId, tokens + ahead)) return false;
    const scratch = remote?.reserve(seqId, tokens) ? i : -1;
    this.local.reserve(seqId, tokens + ahead);
    this.placed.set(seqId, { where: -1, scratch, prefilled: false });
    this.kept++;
    return true;
  }

  release(seqId: number): void {
    const p = this.placed.get(seqId);
    if (!p) return;
    this.placed.delete(seqId);
    if (p.where >= 0) {
      this.executors[p.where]!.release(seqId);
      this.offloaded--;
      return;
    }
    this.local.release(seqId);
    if (p.scratch >= 0) this.executors[p.scratch]!.release(seqId);
    this.kept--;
  }

  prefillTarget(seqId: number): number {
    const p = this.placed.get(seqId);
    if (!p || p.prefilled) return -1;
    return p.where >= 0 ? p.where : p.scratch;
  }

  offloadedTo(seqId: number): number {
    return this.placed.get(seqId)?.where ?? -1;
  }

  prefillDone(seqId: number): void {
    const p = this.placed.get(seqId);
    if (!p || p.prefilled) return;
    p.prefilled = true;
    if (p.scratch >= 0) {
      this.executors[p.scratch]!.release(seqId);
      p.scratch = -1;
    }
  }
}
