import type { LoadedModel } from "../model/types.js";
import { listenTcp } from "../transport/tcp.js";
import { openPrefillHost, type PrefillHostSettings } from "./prefill-host.js";

export interface PrefillListenSettings extends PrefillHostSettings {
  readonly host: string;
  readonly port: number;
  /** Shared secret decode instances must prove in the TCP handshake. */
  readonly token: string;
  readonly log: (line: string) => void;
}

export interface PrefillListener {
  readonly port: number;
  readonly model: LoadedModel;
  close(): Promise<void>;
}

/**
 * A prefill instance that decode instances reach over TCP (`lamina prefill-instance`): the model is
 * loaded once; each authenticated connection gets its own PrefillServer (prefill + an attention
 * executor with its own KV cache), exactly what a locally spawned instance runs over shared memory.
 * A connection that breaks the protocol closes alone; the process and other connections go on.
 */
export async function listenPrefillInstance(s: PrefillListenSettings): Promise<PrefillListener> {
  if (s.token.length < 16) throw new Error("the shared secret (--token) must be at least 16 characters");
  const prefill = await openPrefillHost(s);
  const server = await listenTcp({ host: s.host, port: s.port, secret: s.token, log: s.log }, (channel) => {
    s.log(`decode instance connected: ${channel.description}`);
    prefill.serve(channel, s.log);
    channel.onClose((info) => s.log(`decode instance ${channel.description} gone: ${info.reason}`));
  });
  return { port: server.port, model: prefill.model, close: () => server.close() };
}
