/**
 * Request/response over any Channel. Each request gets a fresh non-zero request id; the peer
 * answers with a message carrying the same id (FLAG_ERROR and `{ message }` for a failure).
 * Replies are read by a caller-supplied function that runs inside the receive callback, while
 * the reply's views are still valid: copy into your own preallocated buffers there, and nothing
 * is allocated or copied twice.
 */
import type { Channel } from "./channel.js";
import { ChannelClosedError, RemoteError, RequestTimeoutError } from "./errors.js";
import { FLAG_ERROR, type Message, type ReceivedMessage } from "./message.js";

interface Pending {
  read: (reply: ReceivedMessage) => unknown;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | null;
}

export interface RpcClientOptions {
  /** Default per-request timeout; default 30000 ms, 0 for none. */
  timeoutMs?: number;
  /** Messages that are not replies to a pending request (notifications); default: ignored. */
  onUnsolicited?: (msg: ReceivedMessage) => void;
}

export class RpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedReason: string | null = null;
  private readonly timeoutMs: number;

  constructor(
    readonly channel: Channel,
    private readonly options: RpcClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 30000;
    channel.onMessage((m) => this.onReply(m));
    channel.onClose((info) => this.failAll(info.reason));
  }

  /** Requests in flight. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Sends `msg` as a request (its requestId is assigned here) and resolves with `read(reply)`.
   * Rejects with RemoteError (peer reported failure), RequestTimeoutError, or ChannelClosedError
   * (the peer went away: every pending request fails at once, none hangs).
   */
  request<T>(msg: Message, read: (reply: ReceivedMessage) => T, timeoutMs = this.timeoutMs): Promise<T> {
    if (this.closedReason !== null) return Promise.reject(new ChannelClosedError(this.closedReason));
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { read, resolve: resolve as (v: unknown) => void, reject, timer: null };
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new RequestTimeoutError(id, timeoutMs));
        }, timeoutMs);
      }
      this.pending.set(id, p);
      this.channel.send({ ...msg, requestId: id }).catch((err: Error) => {
        if (this.pending.delete(id)) {
          if (p.timer) clearTimeout(p.timer);
          reject(err);
        }
      });
    });
  }

  private onReply(m: ReceivedMessage): void {
    const p = m.requestId === 0 ? undefined : this.pending.get(m.requestId);
    if (!p) {
      this.options.onUnsolicited?.(m);
      return;
    }
    this.pending.delete(m.requestId);
    if (p.timer) clearTimeout(p.timer);
    if (m.flags & FLAG_ERROR) {
      const c = m.control as { message?: unknown } | undefined;
      p.reject(new RemoteError(typeof c?.message === "string" ? c.message : "unspecified error"));
      return;
    }
    try {
      p.resolve(p.read(m));
    } catch (err) {
      p.reject(err as Error);
    }
  }

  private failAll(reason: string): void {
    this.closedReason = reason;
    const err = new ChannelClosedError(reason);
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }
}

/** Builds the error response to a request (for responders). */
export function errorReply(request: ReceivedMessage, message: string): Message {
  return { type: request.type, requestId: request.requestId, flags: FLAG_ERROR, control: { message } };
}
