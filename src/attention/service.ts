/**
 * The attention contract: the KV cache and attention math live behind this interface, so the
 * model side (slices of the forward pass) never knows whether attention runs in-process, on
 * attention workers, or partly on prefill instances.
 *
 * Two duties make up the interface, and two optional capabilities extend it:
 * - **KV admission** (`reserve`, `release`, `usage`): synchronous, asked by the scheduler.
 * - **Per-layer attention** (`beginLayer`, `finishLayer`): called by the executor at every cut.
 * - `recovery`: a service whose workers can be lost and brought back (remote attention).
 * - `stats`: numbers only the service knows (compute its workers report, offloading state).
 */

/**
 * The rows of one micro-batch's step as attention sees them. `microBatch` names the micro-batch
 * (0 … pipeline depth − 1): services keep their per-micro-batch buffers in arrays indexed by it.
 */
export interface AttentionStep {
  /** Which micro-batch this step belongs to; stable for the engine's lifetime. */
  readonly microBatch: number;
  /** Query tokens in this step (decode: one per sequence; prefill chunks: several). */
  nTokens: number;
  nSeqs: number;
  /** [nSeqs] engine sequence ids. */
  readonly seqIds: Int32Array;
  /** [nSeqs + 1] offsets: tokens of sequence s are rows seqStart[s] .. seqStart[s + 1] - 1. */
  readonly seqStart: Int32Array;
  /** [nTokens] absolute position of each token in its sequence (its KV slot index). */
  readonly positions: Int32Array;
  /**
   * No other micro-batch is in flight, nor will be, while this step's forward pass runs (the
   * pipeline launched it alone): its layers may be waited for in place, as at depth 1.
   */
  alone?: boolean;
}

export interface KvUsage {
  /** Which attention worker (or "local"). */
  readonly worker: string;
  readonly usedBlocks: number;
  readonly totalBlocks: number;
  readonly blockSize: number;
}

/** Tokens the KV caches hold in all: every worker's blocks times their size. */
export function kvCapacityTokens(usage: readonly KvUsage[]): number {
  return usage.reduce((sum, u) => sum + u.totalBlocks * u.blockSize, 0);
}

/** Raised by `finishLayer` (or `beginLayer`) when a worker holding KV is lost mid-step. */
export class AttentionWorkerLostError extends Error {
  constructor(
    readonly worker: string,
    reason: string,
  ) {
    super(`attention worker ${worker} lost: ${reason}`);
    this.name = "AttentionWorkerLostError";
  }
}

/** KV admission: cheap, synchronous questions the scheduler asks before it plans a step. */
export interface KvAdmission {
  readonly blockSize: number;
  /**
   * Grows sequence `seqId`'s KV reservation to hold positions [0, numTokens), the end of its next
   * step, and `ahead` more positions after them (room kept for its output: the scheduler's output
   * reserve) in every pool that keeps all positions; a window layers' pool frees what the step
   * cannot reach, from numTokens alone. Returns false and changes nothing if there is no room.
   * Remote services keep an exact mirror of their workers' block accounting and send the
   * allocation ahead of the next layer.
   */
  reserve(seqId: number, numTokens: number, ahead?: number): boolean;
  /** Frees every block the sequence holds, everywhere. Unknown ids are ignored. */
  release(seqId: number): void;
  usage(): readonly KvUsage[];
}

/**
 * Per-layer attention. `beginLayer` is called as soon as q exists (early q: a remote worker starts
 * on the cached keys while k and v are computed), then `finishLayer` with k and v; when that
 * returns (or its promise resolves) `out` holds the attention output. Layer 0 of a step is where a
 * service reads the step's rows; later layers of the same micro-batch reuse them.
 */
export interface LayerAttention {
  beginLayer(layer: number, step: AttentionStep, q: Float32Array): void;
  finishLayer(
    layer: number,
    step: AttentionStep,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
  ): void | Promise<void>;
}

/** Capability: workers can be lost and the service can lay KV out again over those left. */
export interface AttentionRecovery {
  /** A worker was lost (even between steps) or a down one is due for a retry: call `recover`. */
  needsRecovery(): boolean;
  /**
   * Brings lost workers back where possible and lays KV out again. Returns the sequences (among
   * `seqIds`, or known to the service) whose KV is gone and must be rebuilt from their tokens.
   * Rejects only when no attention capacity is left.
   */
  recover(seqIds: Iterable<number>): Promise<number[]>;
}

/**
 * Capability: layers that complete only when driven. On the native data plane a worker's OUT is
 * seen by a native wait inside the engine thread, not by the event loop, so a `finishLayer`
 * promise resolves only when someone calls `pump`. The micro-batch pipeline does, whenever every
 * unfinished micro-batch is blocked on this service (nothing else could run meanwhile).
 */
export interface AttentionDrive {
  /** Micro-batches whose current layer waits on this service. */
  blocked(): number;
  /** Waits (spin, then futex) until at least one of them can go on, and resolves or fails it. */
  pump(): void;
}

/**
 * Capability: prefix caching. Full blocks whose KV is written are kept, keyed by a hash of every
 * token up to their end (engine/prefix-keys.ts), and a new sequence starting with the same tokens
 * takes them instead of computing them again; where window layers keep a block pool of their own,
 * the window blocks a prefix's next step reads are kept and found the same way (prefix-pools.ts).
 * Absent in pd / adrenaline, whose prefill instances hold offloaded KV by tokens appended.
 */
export interface PrefixCaching {
  /**
   * Gives sequence `seqId` (holding no KV yet) the cached blocks of the longest run of `keys`
   * (its leading blocks' keys, in order) found; returns how many blocks it got.
   */
  attach(seqId: number, keys: readonly string[]): number;
  /** The sequence's block `index` is full and written: keep it under `key`. */
  publish(seqId: number, index: number, key: string): void;
  /** Blocks holding a cached prefix now, over every worker. */
  cachedBlocks(): number;
}

/** Adrenaline's offloading state (pd / adrenaline placements): offloaded (N) and kept (M) requests. */
export interface OffloadStats {
  /** N/M now. */
  readonly ratio: number;
  readonly offloaded: number;
  readonly kept: number;
  /** The load-aware bound OB = min(OB_mem, OB_comp) on N/M. */
  readonly bound: number;
  /** The limit decisions follow: the bound, a fixed --offload-ratio, or 0 in pd mode. */
  readonly limit: number;
}

/** Capability: numbers only the service knows. */
export interface AttentionServiceStats {
  /** Attention compute its workers reported, in microseconds (absent: attention runs in-process). */
  readonly reportedMicros?: number;
  /** Workers serving now, over which reported compute runs in parallel. */
  readonly liveWorkers?: number;
  /** Seconds this side spent busy-polling its links (the CPU the spin budget costs). */
  readonly pollSeconds?: number;
  readonly offload?: OffloadStats;
}

export interface AttentionService extends KvAdmission, LayerAttention {
  /** e.g. "in-process", "2 attention workers (head-partitioned)". */
  readonly description: string;
  readonly recovery?: AttentionRecovery;
  /** Present (non-null) while layers complete only when driven: see AttentionDrive. */
  readonly drive?: AttentionDrive | null;
  /** Present where cached prefixes can be shared (see PrefixCaching). */
  readonly prefix?: PrefixCaching | null;
  /**
   * True where KV at a sequence's positions past what the engine counts as computed may be written
   * and later written again, and nothing is freed from a step's reach meanwhile: speculative
   * decoding's refused draft tokens are overwritten by the next step. A window layers' pool keeps
   * a whole step's worth of tokens before a reservation's end (window-blocks.ts windowKeepFrom), so
   * a step that takes back fewer tokens than a step holds finds its window still there. Absent
   * (false) in pd / adrenaline, whose prefill instances hold offloaded KV by tokens appended.
   */
  readonly rewritesKv?: boolean;
  stats?(): AttentionServiceStats;
  close(): Promise<void>;
}
