import type { Channel } from "../transport/channel.js";
import {
  type FromModelWorker,
  MODEL_WORKER_MESSAGE,
  MODEL_WORKER_PROTOCOL_VERSION,
} from "./model-worker-protocol.js";

/**
 * A model worker's control link to the one front end it serves: Node IPC when the front end
 * spawned it, an authenticated TCP channel when it listens (`model-worker --listen`). Messages
 * arrive unvalidated; the worker checks each against the protocol's schema.
 */
export interface FrontEndLink {
  readonly description: string;
  /** Whether the front end is gone (or the link was closed here). */
  readonly closed: boolean;
  send(m: FromModelWorker): void;
  onMessage(handler: (raw: unknown) => void): void;
  /** Called once when the front end is gone (disconnect, closed channel). */
  onClose(handler: (why: string) => void): void;
  close(): void;
}

/** The link to the parent that forked this process with an IPC channel. */
export function ipcLink(): FrontEndLink {
  const send = process.send?.bind(process);
  if (!send) throw new Error("no IPC channel to a front end");
  return {
    description: `front end pid ${process.ppid} (IPC)`,
    get closed() {
      return !process.connected;
    },
    send: (m) => void send(m, undefined, {}, () => {}),
    onMessage: (h) => void process.on("message", h),
    onClose: (h) => void process.once("disconnect", () => h("the front end disconnected")),
    close: () => process.disconnect?.(),
  };
}

/** The link over a TCP channel: each message is the JSON control payload of one frame. */
export function channelLink(channel: Channel): FrontEndLink {
  const link: FrontEndLink = {
    description: channel.description,
    get closed() {
      return channel.closed;
    },
    send: (m) => {
      channel.send({ type: MODEL_WORKER_MESSAGE, control: m }).catch(() => {
        // Closed: the close handler reports it.
      });
    },
    onMessage: (h) =>
      channel.onMessage((msg) => {
        if (msg.type === MODEL_WORKER_MESSAGE) h(msg.control);
        else
          link.send({
            v: MODEL_WORKER_PROTOCOL_VERSION,
            type: "error",
            message: `bad message: frame type ${msg.type} is not a model worker message (${MODEL_WORKER_MESSAGE})`,
          });
      }),
    onClose: (h) => channel.onClose((info) => h(info.reason)),
    close: () => void channel.close("model worker session over"),
  };
  return link;
}
