/**
 * The shared segment of a rotation of model workers (Lamina's staggered pipelining over n − 1
 * model replicas). The front end creates it; every model worker on the host maps it. It holds,
 * per micro-batch, the step the front end launched (tokens, positions, sequence ranges, logit
 * rows, each attention worker's rows) and the micro-batch's activation buffers, so the batch's
 * context does not move when its next slice runs on another replica: that replica reads the same
 * memory. Progress is a few counters per micro-batch; the attention workers' replies carry the
 * hand-off between slices (see replica-loop.ts).
 *
 * Layout (little-endian int32 words unless said; regions 64-byte aligned):
 *   0      header: magic, version, pauseEpoch, runEpoch, …, the replicas' doorbell and sleepers
 *          (words 8, 9), the front end's doorbell and sleepers (words 16, 17)
 *   256    replica lines, 64 bytes each: pid, ackEpoch, slices run, lease, then f64s at +16: seconds
 *          running slices, seconds waiting on attention, attention compute the workers reported
 *   4096   micro-batch regions (`batchBytes` each): counters (stepSeq, sliceDone, logitsSeq,
 *          failedSeq, nTokens, nSeqs, nLogits, errorBytes, lostPeer), rows per attention worker from word 16,
 *          an error text at +256, the step's int arrays from +1024, then the activation buffers
 */

import type { ShmNative } from "../transport/shm-native.js";

export const MODEL_PLANE_MAGIC = 0x4d504c4e; // "NLPM"
export const MODEL_PLANE_VERSION = 2;
export const MAX_REPLICAS = 32;
export const MAX_TARGETS = 48;

/**
 * Header words. Two doorbells: the replicas' (launches, slices done, pause and resume) and the
 * front end's (a step's logits or failure, a pause acknowledged), so neither side is woken for
 * what only concerns the other.
 */
export const H = {
  magic: 0,
  version: 1,
  pauseEpoch: 2,
  runEpoch: 3,
  doorbell: 8,
  sleepers: 9,
  frontDoorbell: 16,
  frontSleepers: 17,
} as const;
/** Words of a replica's line (`replicaWords`). */
export const RW = { pid: 0, ackEpoch: 1, slices: 2, lease: 3 } as const;
/** Micro-batch counter words. */
export const B = {
  stepSeq: 0,
  sliceDone: 1,
  logitsSeq: 2,
  failedSeq: 3,
  nTokens: 4,
  nSeqs: 5,
  nLogits: 6,
  errorBytes: 7,
  /** With a failure over a TCP plane: 1 + the replica whose link the failing one lost (0: none). */
  lostPeer: 8,
  subTokens: 16,
} as const;

const HEADER_BYTES = 4096;
const REPLICA_LINE = 64;
const REPLICAS_AT = 256;
const ERROR_AT = 256;
const ERROR_BYTES = 512;
const INTS_AT = 1024;

export interface ModelPlaneShape {
  readonly microBatches: number;
  readonly replicas: number;
  /** Attention workers serving (each gets its own rows of a step). */
  readonly targets: number;
  readonly maxTokens: number;
  /** Sequences per step, and logit rows. */
  readonly maxSeqs: number;
  /** The executor's activation buffers (buffer-plan.ts), in plan order. */
  readonly buffers: readonly { readonly rows: "tokens" | "logits"; readonly width: number }[];
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Byte offsets inside one micro-batch's region. */
interface BatchLayout {
  readonly tokens: number;
  readonly positions: number;
  readonly seqStart: number;
  readonly seqIds: number;
  readonly logitRows: number;
  readonly rows: number;
  readonly buffers: readonly number[];
  readonly bytes: number;
}

function batchLayout(s: ModelPlaneShape): BatchLayout {
  let at = INTS_AT;
  const take = (n: number): number => {
    const here = at;
    at = align(at + 4 * n, 64);
    return here;
  };
  const tokens = take(s.maxTokens);
  const positions = take(s.maxTokens);
  const seqStart = take(s.maxSeqs + 1);
  const seqIds = take(s.maxSeqs);
  const logitRows = take(s.maxSeqs);
  const rows = take(s.targets * s.maxTokens);
  const buffers = s.buffers.map((b) => take((b.rows === "tokens" ? s.maxTokens : s.maxSeqs) * b.width));
  return { tokens, positions, seqStart, seqIds, logitRows, rows, buffers, bytes: align(at, 4096) };
}

/** Bytes of a segment of this shape. */
export function modelPlaneBytes(s: ModelPlaneShape): number {
  return HEADER_BYTES + s.microBatches * batchLayout(s).bytes;
}

/** One micro-batch's views into the segment. */
export interface PlaneBatch {
  /** Its counters and sub-step token counts (an Int32Array over its first 64 words). */
  readonly words: Int32Array;
  readonly tokens: Int32Array;
  readonly positions: Int32Array;
  readonly seqStart: Int32Array;
  readonly seqIds: Int32Array;
  readonly logitRows: Int32Array;
  /** Attention worker t's rows of the step: rows.subarray(t × maxTokens, …). */
  readonly rows: readonly Int32Array[];
  readonly buffers: readonly Float32Array[];
  readonly error: Uint8Array;
  /** Byte offset of its counters in the segment (for futex calls). */
  readonly offset: number;
}

/** The views both sides use on one mapping of the segment. */
export class ModelPlane {
  /** The header words (doorbell, epochs). */
  readonly header: Int32Array;
  readonly batches: readonly PlaneBatch[];
  private readonly replicaLines: readonly { words: Int32Array; seconds: Float64Array }[];

  constructor(
    readonly buffer: ArrayBuffer,
    readonly shape: ModelPlaneShape,
  ) {
    if (shape.replicas < 1 || shape.replicas > MAX_REPLICAS)
      throw new RangeError(`model plane: 1..${MAX_REPLICAS} model workers (got ${shape.replicas})`);
    if (shape.targets < 1 || shape.targets > MAX_TARGETS)
      throw new RangeError(`model plane: 1..${MAX_TARGETS} attention workers (got ${shape.targets})`);
    if (buffer.byteLength < modelPlaneBytes(shape))
      throw new RangeError("model plane: the segment is smaller than its shape needs");
    this.header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.replicaLines = Array.from({ length: shape.replicas }, (_, r) => ({
      words: new Int32Array(buffer, REPLICAS_AT + r * REPLICA_LINE, 4),
      seconds: new Float64Array(buffer, REPLICAS_AT + r * REPLICA_LINE + 16, 3),
    }));
    const lay = batchLayout(shape);
    this.batches = Array.from({ length: shape.microBatches }, (_, j) => {
      const base = HEADER_BYTES + j * lay.bytes;
      const ints = (off: number, n: number) => new Int32Array(buffer, base + off, n);
      return {
        offset: base,
        words: ints(0, 64),
        tokens: ints(lay.tokens, shape.maxTokens),
        positions: ints(lay.positions, shape.maxTokens),
        seqStart: ints(lay.seqStart, shape.maxSeqs + 1),
        seqIds: ints(lay.seqIds, shape.maxSeqs),
        logitRows: ints(lay.logitRows, shape.maxSeqs),
        rows: Array.from({ length: shape.targets }, (_, t) =>
          ints(lay.rows + 4 * t * shape.maxTokens, shape.maxTokens),
        ),
        buffers: shape.buffers.map(
          (b, i) =>
            new Float32Array(
              buffer,
              base + lay.buffers[i]!,
              (b.rows === "tokens" ? shape.maxTokens : shape.maxSeqs) * b.width,
            ),
        ),
        error: new Uint8Array(buffer, base + ERROR_AT, ERROR_BYTES),
      };
    });
  }

  /** Writes a fresh header (the front end, once, before any model worker maps it). */
  initialise(): void {
    new Uint8Array(this.buffer, 0, HEADER_BYTES).fill(0);
    for (const b of this.batches) b.words.fill(0);
    Atomics.store(this.header, H.version, MODEL_PLANE_VERSION);
    Atomics.store(this.header, H.magic, MODEL_PLANE_MAGIC);
  }

  /** Throws unless a front end of this version initialised the segment. */
  check(): void {
    if (Atomics.load(this.header, H.magic) !== MODEL_PLANE_MAGIC)
      throw new Error("model plane: the segment has no header");
    const v = Atomics.load(this.header, H.version);
    if (v !== MODEL_PLANE_VERSION)
      throw new Error(`model plane: version ${v}, this build speaks ${MODEL_PLANE_VERSION}`);
  }

  /**
   * Replica r's line: [pid, ackEpoch, slices, lease] and [model, attention-wait, attention-compute
   * seconds]. The front end sets the lease when it configures a replica and moves it on when it gives
   * the replica up; a loop runs slices only under its own lease.
   */
  replicaWords(r: number): Int32Array {
    return this.replicaLines[r]!.words;
  }

  replicaSeconds(r: number): Float64Array {
    return this.replicaLines[r]!.seconds;
  }

  /** Rings a doorbell (H.doorbell or H.frontDoorbell): its count moves on, every sleeper on it wakes. */
  ring(shm: Pick<ShmNative, "wake">, doorbell: number = H.doorbell): void {
    Atomics.add(this.header, doorbell, 1);
    if (Atomics.load(this.header, doorbell + 1) > 0) shm.wake(this.buffer, doorbell * 4, 1 << 30);
  }

  /** Sleeps on a doorbell while it still reads `seen`, up to timeoutMs (counted as a sleeper). */
  sleep(shm: Pick<ShmNative, "wait">, doorbell: number, seen: number, timeoutMs: number): void {
    Atomics.add(this.header, doorbell + 1, 1);
    shm.wait(this.buffer, doorbell * 4, seen, timeoutMs);
    Atomics.sub(this.header, doorbell + 1, 1);
  }

  /** A failure text a replica left for micro-batch j. */
  errorOf(j: number): string {
    const b = this.batches[j]!;
    const n = Math.min(Math.max(0, Atomics.load(b.words, B.errorBytes)), ERROR_BYTES);
    return new TextDecoder().decode(b.error.subarray(0, n));
  }

  setError(j: number, text: string): void {
    const b = this.batches[j]!;
    const bytes = new TextEncoder().encode(text).subarray(0, ERROR_BYTES);
    b.error.set(bytes);
    Atomics.store(b.words, B.errorBytes, bytes.length);
  }
}
