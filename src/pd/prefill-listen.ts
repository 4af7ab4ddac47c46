import type { KernelBackend } from "../kernels/backend.js";
import { loadKernelBackend } from "../kernels/index.js";
import { loadModel } from "../model/load.js";
import type { LoadedModel } from "../model/types.js";
import { listenTcp, type TcpServer } from "../transport/tcp.js";
import { PrefillServer } from "./prefill-server.js";
import { threadShare } from "./thread-share.js";

export interface PrefillListenSettings {
  readonly host: string;
  readonly port: number;
  /** Shared secret decode instances must prove in the TCP handshake. */
  readonly token: string;
  readonly model?: string;
  readonly tokenizerPath?: string;
  readonly backend: "auto" | "native" | "reference";
  /** KV budget of the attention executor, per decode-instance connection. */
  readonly kvMemory: number;
  readonly prefillThreads: number;
  readonly attentionThreads: number;
  /** Largest prefill step (tokens) a decode instance may send. */
  readonly maxTokens: number;
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
  const backend: KernelBackend = loadKernelBackend({ backend: s.backend, threads: s.prefillThreads });
  const pool = { current: s.prefillThreads };
  const prefill = threadShare(backend, s.prefillThreads, pool);
  const attention = threadShare(backend, s.attentionThreads, pool);
  const model = await loadModel(s.model, s.tokenizerPath ? { tokenizerPath: s.tokenizerPath } : {});
  const server: TcpServer = await listenTcp(
    { host: s.host, port: s.port, secret: s.token, log: s.log },
    (channel) => {
      s.log(`decode instance connected: ${channel.description}`);
      new PrefillServer(
        channel,
        model,
        prefill,
        attention,
        { kvMemory: s.kvMemory, log: s.log },
        s.maxTokens,
      );
      channel.onClose((info) => s.log(`decode instance ${channel.description} gone: ${info.reason}`));
    },
  );
  return { port: server.port, model, close: () => server.close() };
}
