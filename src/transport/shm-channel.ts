/**
 * A Channel between two processes (or threads) on one host, over a shared-memory segment holding
 * two SPSC rings (shm-ring.ts). Sending copies the frame into the ring (the one copy shared
 * memory needs); receiving hands out views into the ring, released after the callback.
 *
 * Waiting is spin-then-sleep: a side with nothing to do polls the ring for `spinMicros`, then
 * sleeps on a futex in slices of `pollSliceMs`; between slices it checks that the peer process
 * is alive and has not closed, so a dead peer is reported, never waited on forever.
 *
 * Two ways to receive, pick one per channel:
 *   - `onMessage(cb)`: an async pump on the event loop (the sleep runs on a libuv pool thread);
 *   - `receiveSync(timeoutMs)`: blocking, for a dedicated loop in a worker thread or process.
 *
 * Lifetime of the segment's name: the creator unlinks it as soon as the opener has attached (the
 * mapping stays valid), on close, and at process exit, so no name outlives its channel.
 */
import {
  type Channel,
  type CloseInfo,
  CloseNotifier,
  type MessageHandler,
  type PollStats,
} from "./channel.js";
import { DecodedMessage, FrameEncoder } from "./codec.js";
import { ChannelClosedError, FrameError } from "./errors.js";
import { type FrameLimits, resolveLimits } from "./limits.js";
import type { Message, ReceivedMessage } from "./message.js";
import { isSegmentName, newSegmentName, unlinkAtExit, unlinkSegmentName } from "./shm-names.js";
import { type ShmNative, shmNative, WAIT_TIMED_OUT } from "./shm-native.js";
import {
  DATA_START,
  H_ATTACH,
  H_CAPACITY,
  H_CREATOR_CLOSED,
  H_CREATOR_PID,
  H_LAYOUT,
  H_MAGIC,
  H_OPENER_CLOSED,
  H_OPENER_PID,
  maxFrameForCapacity,
  RingReader,
  RingWriter,
  ringLayout,
  SEGMENT_LAYOUT,
  SEGMENT_MAGIC,
} from "./shm-ring.js";

export interface ShmOptions {
  /** Bytes per direction, a power of two ≥ 64 KiB; default 64 MiB (tmpfs pages are only used when touched). */
  capacityBytes?: number;
  /** Frame limits enforced on both directions; maxFrameBytes is capped at capacity/2. */
  limits?: Partial<FrameLimits>;
  /** How long a side with nothing to do polls before it sleeps; default 50 µs. */
  spinMicros?: number;
  /** Sleep slice between liveness checks; default 50 ms. */
  pollSliceMs?: number;
}

const DEFAULT_CAPACITY = 64 * 1024 * 1024;
const RESOLVED = Promise.resolve();
const live = new Set<ShmChannel>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const ch of live) ch.markClosedForExit();
  });
}

interface QueuedSend {
  msg: Message;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Spins until `ready()` or `micros` elapsed; true if ready. */
function spin(micros: number, ready: () => boolean): boolean {
  if (micros <= 0) return ready();
  const until = performance.now() + micros / 1000;
  for (;;) {
    for (let i = 0; i < 64; i++) if (ready()) return true;
    if (performance.now() >= until) return false;
  }
}

export class ShmChannel implements Channel {
  readonly description: string;
  readonly sameHost = true;
  readonly limits: FrameLimits;
  private readonly i32: Int32Array;
  private readonly writer: RingWriter;
  private readonly reader: RingReader;
  private readonly encoder: FrameEncoder;
  private readonly msg = new DecodedMessage();
  private readonly closer = new CloseNotifier();
  private readonly spinMicros: number;
  private spinMs = 0;
  private sleepCount = 0;
  private readonly sliceMs: number;
  private readonly myClosedIdx: number;
  private readonly peerClosedIdx: number;
  private readonly peerPidIdx: number;
  private handler: MessageHandler | null = null;
  private mode: "none" | "pump" | "sync" = "none";
  private pumpDone: Promise<void> = RESOLVED;
  private readonly sendQueue: QueuedSend[] = [];
  private writerLoopRunning = false;
  private unlinked: boolean;
  private isClosed = false;

  /** Use createShmChannel / openShmChannel / createShmChannelPair. */
  constructor(
    private readonly native: ShmNative,
    private readonly buffer: ArrayBuffer,
    readonly name: string,
    readonly role: "creator" | "opener",
    options: ShmOptions,
  ) {
    this.i32 = new Int32Array(buffer);
    const capacity = this.i32[H_CAPACITY]!;
    const limits = resolveLimits(options.limits);
    this.limits = Object.freeze({
      ...limits,
      maxFrameBytes: Math.min(limits.maxFrameBytes, maxFrameForCapacity(capacity)),
    });
    const [out, inn] = role === "creator" ? ([0, 1] as const) : ([1, 0] as const);
    this.writer = new RingWriter(native, buffer, ringLayout(out, capacity));
    this.reader = new RingReader(native, buffer, ringLayout(inn, capacity), this.limits);
    this.encoder = new FrameEncoder(this.limits);
    this.spinMicros = options.spinMicros ?? 50;
    this.sliceMs = options.pollSliceMs ?? 50;
    if (!(this.spinMicros >= 0) || !(this.sliceMs > 0 && this.sliceMs <= 60000))
      throw new RangeError("shm options: spinMicros must be ≥ 0 and pollSliceMs in (0, 60000]");
    this.myClosedIdx = role === "creator" ? H_CREATOR_CLOSED : H_OPENER_CLOSED;
    this.peerClosedIdx = role === "creator" ? H_OPENER_CLOSED : H_CREATOR_CLOSED;
    this.peerPidIdx = role === "creator" ? H_OPENER_PID : H_CREATOR_PID;
    this.unlinked = role === "opener";
    this.description = `shm ${name} (${role})`;
    live.add(this);
    installExitHook();
    if (!this.unlinked) unlinkAtExit(name);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Pid of the other side, or 0 while nobody has opened the segment yet. */
  get peerPid(): number {
    return Atomics.load(this.i32, this.peerPidIdx);
  }

  send(msg: Message): Promise<void> {
    if (this.isClosed) return Promise.reject(new ChannelClosedError(this.closer.info?.reason ?? "closed"));
    try {
      this.encoder.prepare(msg);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.sendQueue.length === 0 && this.writer.tryWrite(this.encoder)) {
      this.encoder.release();
      return RESOLVED;
    }
    this.encoder.release();
    return new Promise((resolve, reject) => {
      this.sendQueue.push({ msg, resolve, reject });
      if (!this.writerLoopRunning) void this.writerLoop();
    });
  }

  /**
   * Blocking send for a dedicated worker loop: spins, then sleeps until the ring has room.
   * Throws FrameError for a bad message, ChannelClosedError if the peer is gone or on timeout.
   */
  sendSync(msg: Message, timeoutMs = Number.POSITIVE_INFINITY): void {
    if (this.isClosed) throw new ChannelClosedError(this.closer.info?.reason ?? "closed");
    if (this.sendQueue.length > 0)
      throw new Error("sendSync while async sends are queued would reorder messages");
    const enc = this.encoder;
    enc.prepare(msg);
    try {
      const deadline = performance.now() + timeoutMs;
      while (!this.writer.tryWrite(enc)) {
        if (this.spinFor(() => this.writer.tryWrite(enc))) return;
        const tail = this.writer.prepareSleep();
        if (this.writer.tryWrite(enc)) {
          this.writer.endSleep();
          return;
        }
        const left = deadline - performance.now();
        this.native.wait(
          this.buffer,
          this.writer.layout.tailByte,
          tail,
          Math.max(0, Math.min(this.sliceMs, left)),
        );
        this.writer.endSleep();
        this.checkPeerOrThrow();
        if (performance.now() >= deadline)
          throw new ChannelClosedError(`send timed out after ${timeoutMs} ms`);
      }
    } finally {
      enc.release();
    }
  }

  /** Spins up to the budget for `ready`; the time it took is counted, and a sleep if it ran out. */
  private spinFor(ready: () => boolean): boolean {
    const t0 = performance.now();
    const ok = spin(this.spinMicros, ready);
    this.spinMs += performance.now() - t0;
    if (!ok) this.sleepCount++;
    return ok;
  }

  pollStats(): PollStats {
    return { spinSeconds: this.spinMs / 1000, sleeps: this.sleepCount };
  }

  onMessage(handler: MessageHandler): void {
    if (this.mode === "sync") throw new Error("onMessage: this channel is already read with receiveSync");
    this.handler = handler;
    if (this.mode === "none" && !this.isClosed) {
      this.mode = "pump";
      this.pumpDone = this.pump();
    }
  }

  /**
   * Blocking receive for a dedicated loop (worker thread or process). Returns the next message,
   * valid until the next receiveSync call, or null after timeoutMs. Throws ChannelClosedError
   * once the peer is gone and everything it sent has been read.
   */
  receiveSync(timeoutMs = Number.POSITIVE_INFINITY): ReceivedMessage | null {
    if (this.mode === "pump") throw new Error("receiveSync: this channel is already read with onMessage");
    this.mode = "sync";
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.isClosed) throw new ChannelClosedError(this.closer.info?.reason ?? "closed");
      if (this.pollOne()) return this.msg;
      if (this.spinFor(() => this.reader.hasData())) continue;
      const left = deadline - performance.now();
      if (left <= 0) return null;
      const head = this.reader.prepareSleep();
      if (!this.reader.hasData())
        this.native.wait(this.buffer, this.reader.layout.headByte, head, Math.min(this.sliceMs, left));
      this.reader.endSleep();
      if (!this.reader.hasData()) this.checkPeerOrThrow();
    }
  }

  onClose(handler: (info: CloseInfo) => void): void {
    this.closer.add(handler);
  }

  /** Creator side: resolves once the opener has attached (and the name is unlinked). */
  async waitForPeer(timeoutMs = 10000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.peerPid === 0) {
      if (this.isClosed) throw new ChannelClosedError(this.closer.info?.reason ?? "closed");
      const left = deadline - performance.now();
      if (left <= 0) throw new ChannelClosedError(`no peer opened ${this.name} within ${timeoutMs} ms`);
      await this.native.waitAsync(this.buffer, H_ATTACH * 4, 0, Math.min(this.sliceMs, left));
    }
    this.unlinkName();
  }

  async close(reason = "closed locally"): Promise<void> {
    this.shutdown(reason, true);
    await this.pumpDone;
  }

  /** Process exit: tell the peer at once rather than letting it find the pid gone. */
  markClosedForExit(): void {
    Atomics.store(this.i32, this.myClosedIdx, 1);
    this.wakeAll();
  }

  private shutdown(reason: string, local: boolean, error?: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    live.delete(this);
    Atomics.store(this.i32, this.myClosedIdx, 1);
    this.wakeAll();
    this.unlinkName();
    const err = new ChannelClosedError(reason);
    for (const q of this.sendQueue.splice(0)) q.reject(err);
    this.closer.fire(error ? { reason, local, error } : { reason, local });
  }

  private wakeAll(): void {
    const w = this.writer.layout;
    const r = this.reader.layout;
    for (const byte of [w.headByte, w.tailByte, r.headByte, r.tailByte])
      this.native.wake(this.buffer, byte, 1 << 30);
  }

  private unlinkName(): void {
    if (this.unlinked) return;
    this.unlinked = true;
    unlinkSegmentName(this.name);
  }

  /** Null while the peer looks alive, else why it is not. */
  private peerProblem(): string | null {
    if (Atomics.load(this.i32, this.peerClosedIdx) !== 0) return "peer closed the channel";
    const pid = this.peerPid;
    if (pid === 0) return null; // not attached yet
    if (!this.unlinked) this.unlinkName();
    return this.native.pidAlive(pid) ? null : `peer process ${pid} is gone`;
  }

  private checkPeerOrThrow(): void {
    const problem = this.peerProblem();
    if (problem) {
      this.shutdown(problem, false);
      throw new ChannelClosedError(problem);
    }
  }

  private pollOne(): boolean {
    try {
      return this.reader.poll(this.msg);
    } catch (err) {
      const e = err as Error;
      this.shutdown(`bad frame: ${e.message}`, true, e);
      throw new ChannelClosedError(`bad frame: ${e.message}`);
    }
  }

  private async pump(): Promise<void> {
    const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
    while (!this.isClosed) {
      let delivered = 0;
      try {
        while (!this.isClosed && delivered < 64 && this.reader.poll(this.msg)) {
          delivered++;
          this.handler?.(this.msg);
          this.reader.release();
        }
      } catch (err) {
        const e = err as Error;
        this.shutdown(
          e instanceof FrameError ? `bad frame: ${e.message}` : `receive handler threw: ${e.message}`,
          true,
          e,
        );
        return;
      }
      if (this.isClosed) return;
      if (delivered > 0) {
        await yieldToLoop();
        continue;
      }
      if (this.spinFor(() => this.reader.hasData())) continue;
      const head = this.reader.prepareSleep();
      let r = 1;
      if (!this.reader.hasData())
        r = await this.native.waitAsync(this.buffer, this.reader.layout.headByte, head, this.sliceMs);
      this.reader.endSleep();
      if (r === WAIT_TIMED_OUT || !this.reader.hasData()) {
        const problem = this.peerProblem();
        if (problem && !this.reader.hasData()) this.shutdown(problem, false);
      }
    }
  }

  private async writerLoop(): Promise<void> {
    this.writerLoopRunning = true;
    try {
      while (this.sendQueue.length > 0 && !this.isClosed) {
        const q = this.sendQueue[0]!;
        try {
          this.encoder.prepare(q.msg);
        } catch (err) {
          this.sendQueue.shift();
          q.reject(err as Error);
          continue;
        }
        if (this.writer.tryWrite(this.encoder)) {
          this.encoder.release();
          this.sendQueue.shift();
          q.resolve();
          continue;
        }
        this.encoder.release();
        const tail = this.writer.prepareSleep();
        if (this.writer.tail() === tail)
          await this.native.waitAsync(this.buffer, this.writer.layout.tailByte, tail, this.sliceMs);
        this.writer.endSleep();
        const problem = this.peerProblem();
        if (problem) this.shutdown(problem, false);
      }
    } finally {
      this.writerLoopRunning = false;
    }
  }
}

function checkCapacity(capacity: number): void {
  if (
    !Number.isInteger(capacity) ||
    capacity < 65536 ||
    capacity > 2 ** 30 ||
    (capacity & (capacity - 1)) !== 0
  )
    throw new RangeError(`shm capacityBytes must be a power of two in 64 KiB..1 GiB, got ${capacity}`);
}

/**
 * Creates a segment and returns the creator's end. Hand `channel.name` to the other process
 * (argv, env, a message) and have it call openShmChannel(name); `waitForPeer()` resolves once it has.
 */
export function createShmChannel(options: ShmOptions = {}): ShmChannel {
  const native = shmNative();
  const capacity = options.capacityBytes ?? DEFAULT_CAPACITY;
  checkCapacity(capacity);
  const name = newSegmentName();
  const buffer = native.create(name, DATA_START + 2 * capacity);
  const i32 = new Int32Array(buffer);
  i32[H_LAYOUT] = SEGMENT_LAYOUT;
  i32[H_CAPACITY] = capacity;
  i32[H_CREATOR_PID] = process.pid;
  Atomics.store(i32, H_MAGIC, SEGMENT_MAGIC);
  return new ShmChannel(native, buffer, name, "creator", options);
}

/** Opens the other end of a segment made by createShmChannel (in another process or thread). */
export function openShmChannel(name: string, options: Omit<ShmOptions, "capacityBytes"> = {}): ShmChannel {
  if (!isSegmentName(name))
    throw new TypeError(`openShmChannel: ${JSON.stringify(name)} is not a lamina shm segment name`);
  const native = shmNative();
  const buffer = native.open(name);
  const i32 = new Int32Array(buffer);
  if (Atomics.load(i32, H_MAGIC) !== SEGMENT_MAGIC || i32[H_LAYOUT] !== SEGMENT_LAYOUT)
    throw new FrameError(`openShmChannel: ${name} is not a lamina channel of layout ${SEGMENT_LAYOUT}`);
  const capacity = i32[H_CAPACITY]!;
  checkCapacity(capacity);
  if (buffer.byteLength < DATA_START + 2 * capacity)
    throw new FrameError(`openShmChannel: ${name} is truncated`);
  const prior = Atomics.compareExchange(i32, H_OPENER_PID, 0, process.pid);
  if (prior !== 0) throw new Error(`openShmChannel: ${name} is already open in process ${prior}`);
  const channel = new ShmChannel(native, buffer, name, "opener", options);
  Atomics.add(i32, H_ATTACH, 1);
  native.wake(buffer, H_ATTACH * 4, 1 << 30);
  // Both ends are mapped: the name is no longer needed. Whichever side gets here first removes
  // it, so a crash of either process from now on cannot leak it.
  native.unlink(name);
  return channel;
}

/** Both ends in this process (tests, or handing one end's name to a worker thread). */
export function createShmChannelPair(options: ShmOptions = {}): [ShmChannel, ShmChannel] {
  const a = createShmChannel(options);
  const b = openShmChannel(a.name, options);
  return [a, b];
}
