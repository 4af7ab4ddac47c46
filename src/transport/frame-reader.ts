/**
 * Reassembles frames from a byte stream (TCP) without copying what does not need it. Chunks are
 * kept as the socket delivered them; a complete frame's meta section and each tensor are handed
 * out as views into those chunks, and only a piece that straddles two chunks (or sits misaligned
 * for its element type) is copied, into a reusable arena. Views into the arena are overwritten by
 * the next frame: that is why received views are only valid during the receive callback.
 *
 * Memory is bounded by the limits: a frame is parsed (and rejected if too large) from its fixed
 * header, so at most one maximum-size frame is ever buffered.
 */
import { DecodedMessage, metaBytes, readFixedHeader } from "./codec.js";
import type { FrameLimits } from "./limits.js";
import { align8, FIXED_HEADER_BYTES } from "./message.js";

const EMPTY = new Uint8Array(0);

export class FrameReader {
  private chunks: Uint8Array[] = [];
  private views: (DataView | undefined)[] = [];
  /** Offset of the first unread byte in chunks[0]. */
  private first = 0;
  private buffered = 0;
  private haveHeader = false;
  private readonly msg = new DecodedMessage();
  private arena = new ArrayBuffer(64 * 1024);
  private arenaBytes = new Uint8Array(this.arena);
  private arenaView = new DataView(this.arena);
  private arenaUsed = 0;
  private stopped = false;
  // Result of locate(): the bytes lie at locBytes[locAt..], with locView over the same buffer.
  private locBytes: Uint8Array = EMPTY;
  private locView: DataView = this.arenaView;
  private locAt = 0;

  constructor(
    public limits: FrameLimits,
    private readonly onFrame: (msg: DecodedMessage) => void,
  ) {}

  /** Stops delivering (the owner closed); buffered bytes are dropped. */
  stop(): void {
    this.stopped = true;
    this.chunks = [];
    this.views = [];
    this.buffered = 0;
  }

  /** Bytes held waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Feeds one chunk; delivers every frame it completes. Throws FrameError on a malformed frame. */
  push(chunk: Uint8Array): void {
    if (this.stopped || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.views.push(undefined);
    this.buffered += chunk.length;
    const msg = this.msg;
    while (!this.stopped) {
      if (!this.haveHeader) {
        if (this.buffered < FIXED_HEADER_BYTES) return;
        this.arenaUsed = 0;
        this.locate(0, FIXED_HEADER_BYTES, 4);
        readFixedHeader(this.locView, this.locAt, this.limits, msg);
        this.haveHeader = true;
      }
      const frameBytes = FIXED_HEADER_BYTES + msg.payloadBytes;
      if (this.buffered < frameBytes) return;
      this.arenaUsed = 0;
      this.locate(0, metaBytes(msg.nInts, msg.controlBytes, msg.nTensors), 8);
      msg.parseMeta(this.locBytes, this.locView, this.locAt, this.limits);
      for (let i = 0; i < msg.tensors.length; i++) {
        const t = msg.tensors[i]!;
        this.locate(t.offset, t.byteLength, t.dtype === "f32" || t.dtype === "i32" ? 4 : 2);
        msg.attach(i, this.locBytes.buffer, this.locBytes.byteOffset + this.locAt);
      }
      this.haveHeader = false;
      this.consume(frameBytes);
      this.onFrame(msg);
    }
  }

  /** Finds bytes [frameOffset, +length) of the current frame as one contiguous, aligned run. */
  private locate(frameOffset: number, length: number, align: number): void {
    let c = 0;
    let at = this.first + frameOffset;
    while (at >= this.chunks[c]!.length && length > 0) {
      at -= this.chunks[c]!.length;
      c++;
    }
    const chunk = this.chunks[c] ?? EMPTY;
    if (at + length <= chunk.length && (chunk.byteOffset + at) % align === 0) {
      this.locBytes = chunk;
      this.locView =
        this.views[c] ?? (this.views[c] = new DataView(chunk.buffer, chunk.byteOffset, chunk.length));
      this.locAt = at;
      return;
    }
    // Straddles chunks (or is misaligned): gather into the arena.
    this.reserveArena(length);
    const dst = this.arenaUsed;
    let copied = 0;
    while (copied < length) {
      const src = this.chunks[c]!;
      const n = Math.min(length - copied, src.length - at);
      this.arenaBytes.set(src.subarray(at, at + n), dst + copied);
      copied += n;
      c++;
      at = 0;
    }
    this.arenaUsed += align8(length);
    this.locBytes = this.arenaBytes;
    this.locView = this.arenaView;
    this.locAt = dst;
  }

  private reserveArena(length: number): void {
    const need = this.arenaUsed + align8(length);
    if (need <= this.arena.byteLength) return;
    // Earlier views of this frame keep the old arena alive; new pieces go to a larger one.
    const size = Math.max(need - this.arenaUsed, this.arena.byteLength * 2);
    this.arena = new ArrayBuffer(align8(size));
    this.arenaBytes = new Uint8Array(this.arena);
    this.arenaView = new DataView(this.arena);
    this.arenaUsed = 0;
  }

  private consume(n: number): void {
    this.buffered -= n;
    let at = this.first + n;
    let drop = 0;
    while (drop < this.chunks.length && at >= this.chunks[drop]!.length) {
      at -= this.chunks[drop]!.length;
      drop++;
    }
    if (drop > 0) {
      this.chunks.splice(0, drop);
      this.views.splice(0, drop);
    }
    this.first = at;
  }
}
