/**
 * A single-producer single-consumer ring of variable-size frames in shared memory, and the
 * layout of the segment that holds two of them (one per direction).
 *
 * Segment layout (byte offsets):
 *   0     header: magic, layout version, ring capacity, creator pid, opener pid, closed flags,
 *         attach word (int32 each, see H_*)
 *   128   ring 0 producer line: head (bytes published, wrapping int32), reader-sleeping flag
 *   192   ring 0 consumer line: tail (bytes consumed), writer-sleeping flag
 *   256   ring 1 producer line;  320 ring 1 consumer line
 *   4096  ring 0 data (capacity bytes), then ring 1 data
 * Ring 0 carries creator → opener, ring 1 opener → creator. Capacity is a power of two.
 *
 * A record is an 8-byte length word followed by the frame, padded to 8; a length of WRAP means
 * "continue at offset 0". The producer publishes by storing head (seq_cst), then wakes the
 * consumer only if it announced it is sleeping; the consumer announces, re-checks head, then
 * futex-waits on the head word. So the hot path is plain memory traffic, and a system call
 * happens only when one side has run out of work.
 */
import type { DecodedMessage, FrameEncoder } from "./codec.js";
import { readFixedHeader } from "./codec.js";
import { FrameError } from "./errors.js";
import type { FrameLimits } from "./limits.js";
import { align8, FIXED_HEADER_BYTES } from "./message.js";
import type { ShmNative } from "./shm-native.js";

export const SEGMENT_MAGIC = 0x4d48534c; // "LSHM"
export const SEGMENT_LAYOUT = 1;
export const DATA_START = 4096;
export const H_MAGIC = 0;
export const H_LAYOUT = 1;
export const H_CAPACITY = 2;
export const H_CREATOR_PID = 3;
export const H_OPENER_PID = 4;
export const H_CREATOR_CLOSED = 5;
export const H_OPENER_CLOSED = 6;
export const H_ATTACH = 7;
const WRAP = -1;
const RECORD_HEADER = 8;

/** Byte offsets of one ring's shared words and data. */
export interface RingLayout {
  headByte: number;
  readerSleepingByte: number;
  tailByte: number;
  writerSleepingByte: number;
  dataByte: number;
  capacity: number;
}

export function ringLayout(ring: 0 | 1, capacity: number): RingLayout {
  const base = 128 + ring * 128;
  return {
    headByte: base,
    readerSleepingByte: base + 4,
    tailByte: base + 64,
    writerSleepingByte: base + 68,
    dataByte: DATA_START + ring * capacity,
    capacity,
  };
}

/** Largest frame a ring of this capacity accepts (a record must fit twice, for the wrap). */
export function maxFrameForCapacity(capacity: number): number {
  return capacity / 2 - RECORD_HEADER;
}

/** The producer side of one ring. */
export class RingWriter {
  private readonly i32: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly headIdx: number;
  private readonly tailIdx: number;
  private readonly sleepingIdx: number;
  private readonly mask: number;
  private head: number;

  constructor(
    private readonly native: ShmNative,
    private readonly buffer: ArrayBuffer,
    readonly layout: RingLayout,
  ) {
    this.i32 = new Int32Array(buffer);
    this.bytes = new Uint8Array(buffer);
    this.view = new DataView(buffer);
    this.headIdx = layout.headByte >> 2;
    this.tailIdx = layout.tailByte >> 2;
    this.sleepingIdx = layout.readerSleepingByte >> 2;
    this.mask = layout.capacity - 1;
    this.head = Atomics.load(this.i32, this.headIdx);
  }

  /** Writes the frame prepared in `enc`; false if the ring lacks room right now. */
  tryWrite(enc: FrameEncoder): boolean {
    const cap = this.layout.capacity;
    const need = RECORD_HEADER + align8(enc.frameBytes);
    const tail = Atomics.load(this.i32, this.tailIdx);
    const used = (this.head - tail) | 0;
    let off = this.head & this.mask;
    const contiguous = cap - off;
    const total = need <= contiguous ? need : contiguous + need;
    if (cap - used < total) return false;
    const base = this.layout.dataByte;
    if (need > contiguous) {
      this.i32[(base + off) >> 2] = WRAP;
      this.head = (this.head + contiguous) | 0;
      off = 0;
    }
    const at = base + off;
    enc.writeMeta(this.bytes, this.view, at + RECORD_HEADER);
    enc.writeTensorData(this.bytes, at + RECORD_HEADER + enc.metaBytes);
    this.i32[at >> 2] = enc.frameBytes;
    this.head = (this.head + need) | 0;
    Atomics.store(this.i32, this.headIdx, this.head);
    if (Atomics.load(this.i32, this.sleepingIdx) !== 0)
      this.native.wake(this.buffer, this.layout.headByte, 1);
    return true;
  }

  /** Announces that the writer is about to sleep on the tail word; returns the value to wait on. */
  prepareSleep(): number {
    Atomics.store(this.i32, this.layout.writerSleepingByte >> 2, 1);
    return Atomics.load(this.i32, this.tailIdx);
  }

  endSleep(): void {
    Atomics.store(this.i32, this.layout.writerSleepingByte >> 2, 0);
  }

  /** Tail value now (changes when the consumer frees space). */
  tail(): number {
    return Atomics.load(this.i32, this.tailIdx);
  }
}

/** The consumer side of one ring. */
export class RingReader {
  private readonly i32: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly headIdx: number;
  private readonly tailIdx: number;
  private readonly mask: number;
  private tail: number;
  /** Bytes of the record handed out by the last poll, released by release(). */
  private held = 0;

  constructor(
    private readonly native: ShmNative,
    private readonly buffer: ArrayBuffer,
    readonly layout: RingLayout,
    private readonly limits: FrameLimits,
  ) {
    this.i32 = new Int32Array(buffer);
    this.bytes = new Uint8Array(buffer);
    this.view = new DataView(buffer);
    this.headIdx = layout.headByte >> 2;
    this.tailIdx = layout.tailByte >> 2;
    this.mask = layout.capacity - 1;
    this.tail = Atomics.load(this.i32, this.tailIdx);
  }

  /** True if a frame is published and not yet taken. */
  hasData(): boolean {
    return Atomics.load(this.i32, this.headIdx) !== this.tail;
  }

  /** Head value now (the word a sleeping reader waits on). */
  head(): number {
    return Atomics.load(this.i32, this.headIdx);
  }

  /**
   * Decodes the next frame into `msg` (views into the ring) and holds its space until release().
   * Returns false when the ring is empty. Throws FrameError on a corrupt ring or frame.
   */
  poll(msg: DecodedMessage): boolean {
    if (this.held !== 0) this.release();
    const cap = this.layout.capacity;
    const head = Atomics.load(this.i32, this.headIdx);
    if (head === this.tail) return false;
    let off = this.tail & this.mask;
    const base = this.layout.dataByte;
    let len = this.i32[(base + off) >> 2]!;
    if (len === WRAP) {
      this.tail = (this.tail + (cap - off)) | 0;
      off = 0;
      len = this.i32[base >> 2]!;
    }
    const avail = (head - this.tail) | 0;
    if (len < FIXED_HEADER_BYTES || RECORD_HEADER + align8(len) > Math.min(avail, cap - off))
      throw new FrameError(`corrupt ring record of length ${len} at offset ${off}`);
    const at = base + off + RECORD_HEADER;
    readFixedHeader(this.view, at, this.limits, msg);
    if (FIXED_HEADER_BYTES + msg.payloadBytes !== len)
      throw new FrameError(`ring record length ${len} disagrees with its frame header`);
    msg.parseMeta(this.bytes, this.view, at, this.limits);
    for (let i = 0; i < msg.tensors.length; i++) msg.attach(i, this.buffer, at + msg.tensors[i]!.offset);
    this.held = RECORD_HEADER + align8(len);
    return true;
  }

  /** Frees the record the last poll handed out (its views become invalid) and wakes a waiting writer. */
  release(): void {
    if (this.held === 0) return;
    this.tail = (this.tail + this.held) | 0;
    this.held = 0;
    Atomics.store(this.i32, this.tailIdx, this.tail);
    if (Atomics.load(this.i32, this.layout.writerSleepingByte >> 2) !== 0)
      this.native.wake(this.buffer, this.layout.tailByte, 1);
  }

  /** Announces that the reader is about to sleep on the head word; returns the value to wait on. */
  prepareSleep(): number {
    Atomics.store(this.i32, this.layout.readerSleepingByte >> 2, 1);
    return Atomics.load(this.i32, this.headIdx);
  }

  endSleep(): void {
    Atomics.store(this.i32, this.layout.readerSleepingByte >> 2, 0);
  }
}
