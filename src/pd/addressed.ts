import type { Channel } from "../transport/channel.js";
import { connectTcp } from "../transport/tcp.js";

/** A prefill instance already running elsewhere (`lamina prefill-instance`), reached over TCP. */
export class AddressedPrefillInstance {
  constructor(
    readonly address: string,
    private readonly host: string,
    private readonly port: number,
    private readonly token: string,
    private readonly log: (line: string) => void,
  ) {}

  /** From "host:port" (IPv6 hosts in brackets). */
  static parse(addr: string, token: string, log: (line: string) => void): AddressedPrefillInstance {
    const i = addr.lastIndexOf(":");
    const host = addr.slice(0, i).replace(/^\[|\]$/g, "");
    return new AddressedPrefillInstance(addr, host, Number(addr.slice(i + 1)), token, log);
  }

  open(): Promise<Channel> {
    return connectTcp({ host: this.host, port: this.port, secret: this.token, log: this.log });
  }
}
