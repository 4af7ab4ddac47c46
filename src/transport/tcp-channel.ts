/**
 * A Channel over one TCP connection. Frames go out as the encoded meta section followed by views
 * of the caller's tensor memory, written corked so Node issues one writev (no copy in user
 * space); frames come in through a FrameReader (views into the receive buffers, a copy only for a
 * tensor that straddles two reads). TCP_NODELAY is on: per-layer messages must not wait for
 * Nagle. The handshake (handshake.ts) runs before the channel is handed to the application.
 */
import type { Socket } from "node:net";
import { type Channel, type CloseInfo, CloseNotifier, type MessageHandler } from "./channel.js";
import { type DecodedMessage, FrameEncoder } from "./codec.js";
import { parseControl } from "./control.js";
import { ChannelClosedError, FrameError, HandshakeError } from "./errors.js";
import { FrameReader } from "./frame-reader.js";
import {
  AuthOkSchema,
  AuthSchema,
  GoodbyeSchema,
  HelloSchema,
  MSG_AUTH,
  MSG_AUTH_OK,
  MSG_GOODBYE,
  MSG_HELLO,
  MSG_PING,
  newNonce,
  proof,
  proofMatches,
} from "./handshake.js";
import { type FrameLimits, HANDSHAKE_LIMITS } from "./limits.js";
import {
  align8,
  copyMessage,
  FIRST_RESERVED_TYPE,
  type Message,
  PROTOCOL_VERSION,
  type ReceivedMessage,
} from "./message.js";

/** Messages kept for a receiver that has not set its handler yet. */
const MAX_EARLY = 64;

export interface TcpChannelOptions {
  limits: FrameLimits;
  secret: Uint8Array;
  /** Abort the handshake after this long. */
  handshakeTimeoutMs: number;
  /** Send a ping when nothing was sent for this long (0: never). */
  heartbeatMs: number;
  /** Close when nothing (not even a ping) arrived for this long (0: never). */
  peerTimeoutMs: number;
  log: (line: string) => void;
}

interface PendingSend {
  msg: Message;
  reserved: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

const HEADER_POOL_BYTES = 4096;
const PADDING: Buffer[] = Array.from({ length: 8 }, (_, n) => Buffer.alloc(n));

type State = "handshake" | "open" | "closed";

export class TcpChannel implements Channel {
  readonly description: string;
  readonly addresses: { readonly local: string; readonly remote: string };
  private state: State = "handshake";
  private readonly reader: FrameReader;
  private readonly encoder: FrameEncoder;
  private handler: MessageHandler | null = null;
  /**
   * Messages that arrived before a handler was set (a peer that speaks first, right after the
   * handshake, before the opener's `connectTcp` has resolved): copied, and delivered once one is.
   */
  private early: ReceivedMessage[] = [];
  private readonly closer = new CloseNotifier();
  private readonly queue: PendingSend[] = [];
  private blocked = false;
  private readonly headerPool: { buf: Buffer; view: DataView }[] = [];
  private lastSent = Date.now();
  private lastReceived = Date.now();
  private paused = false;
  private timer: NodeJS.Timeout | null = null;
  private handshakeDone: ((err: Error | null) => void) | null = null;
  private myNonce = "";
  private peerNonce = "";
  private readonly closedPromise: Promise<void>;

  constructor(
    private readonly socket: Socket,
    private readonly role: "client" | "server",
    private readonly opts: TcpChannelOptions,
  ) {
    this.description = `tcp ${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
    this.addresses = { local: socket.localAddress ?? "", remote: socket.remoteAddress ?? "" };
    this.encoder = new FrameEncoder(opts.limits);
    this.reader = new FrameReader(HANDSHAKE_LIMITS, (m) => this.onFrame(m));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5000);
    this.closedPromise = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (chunk: Buffer) => {
      this.lastReceived = Date.now();
      try {
        this.reader.push(chunk);
      } catch (err) {
        const e = err as Error;
        this.fail(
          e instanceof FrameError ? `bad frame: ${e.message}` : `receive handler threw: ${e.message}`,
          e,
        );
      }
    });
    socket.on("drain", () => this.flushQueue());
    socket.on("error", (err) => this.fail(`socket error: ${err.message}`, err, false));
    socket.on("close", () => this.fail("peer closed the connection", undefined, false));
  }

  get closed(): boolean {
    return this.state === "closed";
  }

  /** Runs the handshake; resolves when the channel is open. Called by listenTcp/connectTcp. */
  handshake(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timeout = setTimeout(
        () => this.fail(`handshake timed out after ${this.opts.handshakeTimeoutMs} ms`),
        this.opts.handshakeTimeoutMs,
      );
      this.handshakeDone = (err) => {
        clearTimeout(timeout);
        this.handshakeDone = null;
        if (err) reject(err);
        else resolve();
      };
      this.myNonce = newNonce();
      if (this.role === "server")
        this.sendInternal({ type: MSG_HELLO, control: { protocol: PROTOCOL_VERSION, nonce: this.myNonce } });
    });
  }

  send(msg: Message): Promise<void> {
    if (this.state !== "open")
      return Promise.reject(new ChannelClosedError(this.closer.info?.reason ?? "handshake not finished"));
    try {
      this.encoder.prepare(msg);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      if (this.blocked || this.queue.length > 0) this.queue.push({ msg, reserved: false, resolve, reject });
      else this.writeFrame(msg, false, resolve, reject);
    });
  }

  onMessage(handler: MessageHandler): void {
    this.handler = handler;
    const early = this.early;
    this.early = [];
    if (early.length > 0)
      queueMicrotask(() => {
        for (const m of early) if (!this.closer.info) this.handler?.(m);
      });
  }

  onClose(handler: (info: CloseInfo) => void): void {
    this.closer.add(handler);
  }

  /** Stops reading from the socket (the peer's sends then stall on backpressure). */
  pause(): void {
    this.paused = true;
    this.socket.pause();
  }

  resume(): void {
    this.paused = false;
    this.lastReceived = Date.now();
    this.socket.resume();
  }

  /** Bytes queued in this process for the socket (bounded by backpressure). */
  get writeBufferBytes(): number {
    return this.socket.writableLength;
  }

  async close(reason = "closed locally"): Promise<void> {
    if (this.state !== "closed") {
      if (this.state === "open")
        this.sendInternal({ type: MSG_GOODBYE, control: { reason: reason.slice(0, 1000) } });
      this.shutdown(reason, true, undefined, true);
    }
    await this.closedPromise;
  }

  private fail(reason: string, error?: Error, local = true): void {
    if (this.state === "closed") return;
    if (local) {
      this.opts.log(`closing ${this.description}: ${reason}`);
      // Tell the peer why (best effort), then hang up.
      this.sendInternal({ type: MSG_GOODBYE, control: { reason: reason.slice(0, 1000) } });
    }
    this.shutdown(reason, local, error, local);
  }

  private shutdown(reason: string, local: boolean, error: Error | undefined, graceful: boolean): void {
    this.state = "closed";
    this.reader.stop();
    if (this.timer) clearInterval(this.timer);
    if (graceful) {
      this.socket.end();
      // Do not wait forever for a peer that never reads.
      setTimeout(() => this.socket.destroy(), 1000).unref();
    } else this.socket.destroy();
    const err = new ChannelClosedError(reason);
    for (const p of this.queue.splice(0)) p.reject(err);
    this.handshakeDone?.(new HandshakeError(reason));
    this.closer.fire(error ? { reason, local, error } : { reason, local });
  }

  private onFrame(m: DecodedMessage): void {
    if (m.type < FIRST_RESERVED_TYPE) {
      if (this.state !== "open")
        throw new FrameError(`message type ${m.type} before the handshake completed`);
      if (this.handler) this.handler(m);
      else if (this.early.length < MAX_EARLY) this.early.push(copyMessage(m));
      else throw new FrameError(`more than ${MAX_EARLY} messages before the receiver was ready`);
      return;
    }
    switch (m.type) {
      case MSG_PING:
        return;
      case MSG_GOODBYE: {
        const { reason } = parseControl(m, GoodbyeSchema, "goodbye");
        this.shutdown(`peer closed: ${reason}`, false, undefined, true);
        return;
      }
      case MSG_HELLO:
        this.onHello(m);
        return;
      case MSG_AUTH:
        this.onAuth(m);
        return;
      case MSG_AUTH_OK:
        this.onAuthOk(m);
        return;
      default:
        throw new FrameError(`unknown transport message type 0x${m.type.toString(16)}`);
    }
  }

  private onHello(m: DecodedMessage): void {
    if (this.role !== "client" || this.peerNonce) throw new FrameError("unexpected HELLO");
    const hello = parseControl(m, HelloSchema, "HELLO");
    if (hello.protocol !== PROTOCOL_VERSION)
      throw new FrameError(`server speaks protocol ${hello.protocol}, this side ${PROTOCOL_VERSION}`);
    this.peerNonce = hello.nonce;
    const mac = proof(this.opts.secret, "client", this.peerNonce, this.myNonce);
    this.sendInternal({ type: MSG_AUTH, control: { protocol: PROTOCOL_VERSION, nonce: this.myNonce, mac } });
  }

  private onAuth(m: DecodedMessage): void {
    if (this.role !== "server" || this.state !== "handshake") throw new FrameError("unexpected AUTH");
    const auth = parseControl(m, AuthSchema, "AUTH");
    if (auth.protocol !== PROTOCOL_VERSION)
      throw new FrameError(`client speaks protocol ${auth.protocol}, this side ${PROTOCOL_VERSION}`);
    if (!proofMatches(proof(this.opts.secret, "client", this.myNonce, auth.nonce), auth.mac)) {
      this.fail("authentication failed (wrong secret)");
      return;
    }
    this.sendInternal({
      type: MSG_AUTH_OK,
      control: { mac: proof(this.opts.secret, "server", auth.nonce, this.myNonce) },
    });
    this.open();
  }

  private onAuthOk(m: DecodedMessage): void {
    if (this.role !== "client" || !this.peerNonce || this.state !== "handshake")
      throw new FrameError("unexpected AUTH_OK");
    const ok = parseControl(m, AuthOkSchema, "AUTH_OK");
    if (!proofMatches(proof(this.opts.secret, "server", this.myNonce, this.peerNonce), ok.mac)) {
      this.fail("the server failed to prove it knows the secret");
      return;
    }
    this.open();
  }

  private open(): void {
    this.state = "open";
    this.reader.limits = this.opts.limits;
    const { heartbeatMs, peerTimeoutMs } = this.opts;
    if (heartbeatMs > 0 || peerTimeoutMs > 0) {
      const tick = Math.max(10, Math.min(heartbeatMs || peerTimeoutMs, peerTimeoutMs || heartbeatMs) / 2);
      this.timer = setInterval(() => this.heartbeat(), tick);
      this.timer.unref();
    }
    this.handshakeDone?.(null);
  }

  private heartbeat(): void {
    const now = Date.now();
    const { heartbeatMs, peerTimeoutMs } = this.opts;
    if (peerTimeoutMs > 0 && !this.paused && now - this.lastReceived > peerTimeoutMs) {
      this.fail(`peer silent for ${now - this.lastReceived} ms (limit ${peerTimeoutMs} ms)`);
      return;
    }
    if (heartbeatMs > 0 && now - this.lastSent >= heartbeatMs && !this.blocked && this.queue.length === 0)
      this.sendInternal({ type: MSG_PING });
  }

  /** Transport messages bypass the application queue's ordering only when nothing is queued. */
  private sendInternal(msg: Message): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    const noop = () => {};
    if (this.blocked || this.queue.length > 0)
      this.queue.push({ msg, reserved: true, resolve: noop, reject: noop });
    else this.writeFrame(msg, true, noop, noop);
  }

  private writeFrame(
    msg: Message,
    reserved: boolean,
    resolve: () => void,
    reject: (err: Error) => void,
  ): void {
    const enc = this.encoder;
    try {
      enc.prepare(msg, reserved);
    } catch (err) {
      reject(err as Error);
      return;
    }
    const pooled = enc.metaBytes <= HEADER_POOL_BYTES;
    const header = pooled
      ? (this.headerPool.pop() ?? this.newHeader())
      : { buf: Buffer.allocUnsafe(enc.metaBytes), view: null as unknown as DataView };
    if (!pooled) header.view = new DataView(header.buf.buffer, header.buf.byteOffset, header.buf.length);
    enc.writeMeta(header.buf, header.view, 0);
    const socket = this.socket;
    const tensors = msg.tensors;
    const done = (err?: Error | null) => {
      if (pooled) this.headerPool.push(header);
      if (err) reject(err);
      else resolve();
    };
    socket.cork();
    let ok: boolean;
    if (!tensors || tensors.length === 0) ok = socket.write(header.buf.subarray(0, enc.metaBytes), done);
    else {
      socket.write(header.buf.subarray(0, enc.metaBytes));
      ok = true;
      for (let i = 0; i < tensors.length; i++) {
        const d = tensors[i]!.data;
        const pad = align8(d.byteLength) - d.byteLength;
        const last = i === tensors.length - 1;
        const body = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
        if (last && pad === 0) ok = socket.write(body, done);
        else socket.write(body);
        if (pad !== 0) {
          if (last) ok = socket.write(PADDING[pad]!, done);
          else socket.write(PADDING[pad]!);
        }
      }
    }
    socket.uncork();
    enc.release();
    this.lastSent = Date.now();
    // Respect backpressure: nothing more is written until the socket drains.
    if (!ok) this.blocked = true;
  }

  private flushQueue(): void {
    this.blocked = false;
    while (!this.blocked && this.queue.length > 0 && this.state !== "closed") {
      const p = this.queue.shift()!;
      this.writeFrame(p.msg, p.reserved, p.resolve, p.reject);
    }
  }

  private newHeader(): { buf: Buffer; view: DataView } {
    const buf = Buffer.allocUnsafeSlow(HEADER_POOL_BYTES);
    return { buf, view: new DataView(buf.buffer, buf.byteOffset, buf.length) };
  }
}
