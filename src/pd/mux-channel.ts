import type { Channel, CloseInfo, MessageHandler } from "../transport/channel.js";
import type { Message, ReceivedMessage } from "../transport/message.js";

/**
 * One connection carrying two protocols, told apart by message type: each side gets a Channel of
 * its own (the attention-worker session or RemoteAttentionService on one, prefill traffic on the
 * other) while frames stay in one ordered stream, so a RESERVE sent before a PREFILL arrives first.
 */
export class SubChannel implements Channel {
  private handler: MessageHandler | null = null;

  constructor(
    private readonly base: Channel,
    readonly description: string,
  ) {}

  get closed(): boolean {
    return this.base.closed;
  }

  send(msg: Message): Promise<void> {
    return this.base.send(msg);
  }

  onMessage(handler: MessageHandler): void {
    this.handler = handler;
  }

  onClose(handler: (info: CloseInfo) => void): void {
    this.base.onClose(handler);
  }

  close(reason?: string): Promise<void> {
    return this.base.close(reason);
  }

  deliver(m: ReceivedMessage): void {
    this.handler?.(m);
  }
}

/** Splits `base` into [messages for which `pick` is false, messages for which it is true]. */
export function splitChannel(base: Channel, pick: (type: number) => boolean): [SubChannel, SubChannel] {
  const rest = new SubChannel(base, base.description);
  const picked = new SubChannel(base, `${base.description} (prefill)`);
  base.onMessage((m) => (pick(m.type) ? picked : rest).deliver(m));
  return [rest, picked];
}
