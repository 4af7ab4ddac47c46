import type { KernelBackend } from "../../src/kernels/backend.js";
import type { LoadedModel } from "../../src/model/types.js";
import { PrefillServer } from "../../src/pd/prefill-server.js";
import type { PrefillOpener } from "../../src/placement/pd.js";
import type { Channel } from "../../src/transport/channel.js";
import { createShmChannelPair } from "../../src/transport/shm-channel.js";
import { connectTcp, listenTcp, type TcpServer } from "../../src/transport/tcp.js";

/**
 * Prefill instances served inside the test process over a real transport (shared-memory channel
 * pairs, or TCP on loopback): the same server code a prefill-instance process runs, minus the
 * fork (and the model load). `close()` stops the TCP listeners.
 */
export function inProcessPrefill(
  model: LoadedModel,
  backend: KernelBackend,
  maxTokens: number,
  kvMemory = 64 << 20,
  transport: "shm" | "tcp" = "shm",
): { opener: PrefillOpener; servers: PrefillServer[]; close: () => Promise<void> } {
  const servers: PrefillServer[] = [];
  const listeners: TcpServer[] = [];
  const secret = "test-secret-0123456789";
  const log = () => {};
  const serve = (ch: Channel) =>
    servers.push(new PrefillServer(ch, model, backend, backend, { kvMemory, log }, maxTokens));
  const opener: PrefillOpener = () => ({
    open: async () => {
      if (transport === "shm") {
        const [decodeSide, prefillSide] = createShmChannelPair();
        serve(prefillSide);
        return decodeSide;
      }
      const server = await listenTcp({ host: "127.0.0.1", port: 0, secret, log }, serve);
      listeners.push(server);
      return connectTcp({ host: "127.0.0.1", port: server.port, secret, log });
    },
  });
  return { opener, servers, close: async () => void (await Promise.all(listeners.map((l) => l.close()))) };
}
