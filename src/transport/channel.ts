/**
 * The transport-neutral channel: one duplex, ordered, reliable stream of framed messages between
 * two processes. Implementations: TcpChannel (across hosts) and ShmChannel (same host).
 */
import type { Message, ReceivedMessage } from "./message.js";

export interface CloseInfo {
  /** Human-readable: "closed locally", "peer closed: …", "peer process 1234 is gone", "bad frame: …". */
  readonly reason: string;
  /** True when this side chose to close (close() or a protocol violation it detected). */
  readonly local: boolean;
  readonly error?: Error;
}

export type MessageHandler = (msg: ReceivedMessage) => void;

export interface Channel {
  /** e.g. "tcp 10.0.0.2:7000" or "shm /lamina-123-1". */
  readonly description: string;
  readonly closed: boolean;
  /**
   * True when both ends are processes of this host sharing memory (shared-memory channels): the
   * attention protocol then moves its per-layer exchange onto a native data plane beside it.
   */
  readonly sameHost?: boolean;
  /** TCP channels: this end's and the peer's IP address (a data-plane socket is opened between them). */
  readonly addresses?: { readonly local: string; readonly remote: string };
  /**
   * Queues one message. The promise resolves once the frame left this process's hands (copied
   * into the shared ring, or handed to the kernel's socket buffer): until then the message and
   * its tensors' memory must not be modified. Awaiting each send is what gives backpressure:
   * a slow reader stalls the writer instead of growing its memory. Rejects with FrameError for a
   * message that breaks the limits (the channel stays open) and ChannelClosedError once closed.
   */
  send(msg: Message): Promise<void>;
  /**
   * Sets the one receive callback (replacing any earlier one). It runs synchronously per message;
   * the message's views are only valid until it returns (see ReceivedMessage). An exception
   * thrown by the callback closes the channel with that reason. TCP channels keep (copied) what
   * arrives before the first callback is set and deliver it in a microtask once it is.
   */
  onMessage(handler: MessageHandler): void;
  /** Called once, whatever closed the channel. Registering after close calls back at once. */
  onClose(handler: (info: CloseInfo) => void): void;
  /** Closes both directions, tells the peer, releases resources. Idempotent. */
  close(reason?: string): Promise<void>;
  /** Time spent busy-polling for data or room, and sleeps taken after the spin budget ran out. */
  pollStats?(): PollStats;
}

export interface PollStats {
  readonly spinSeconds: number;
  readonly sleeps: number;
}

/** Shared close bookkeeping for implementations. */
export class CloseNotifier {
  private handlers: ((info: CloseInfo) => void)[] = [];
  info: CloseInfo | null = null;

  add(handler: (info: CloseInfo) => void): void {
    if (this.info) queueMicrotask(() => handler(this.info!));
    else this.handlers.push(handler);
  }

  /** Returns false if already closed. */
  fire(info: CloseInfo): boolean {
    if (this.info) return false;
    this.info = info;
    const hs = this.handlers;
    this.handlers = [];
    for (const h of hs) {
      try {
        h(info);
      } catch (err) {
        console.error("lamina transport: an onClose handler threw:", err);
      }
    }
    return true;
  }
}
