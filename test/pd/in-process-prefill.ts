import type { KernelBackend } from "../../src/kernels/backend.js";
import type { LoadedModel } from "../../src/model/types.js";
import { PrefillServer } from "../../src/pd/prefill-server.js";
import type { PrefillOpener } from "../../src/placement/pd.js";
import { createShmChannelPair } from "../../src/transport/shm-channel.js";

/**
 * Prefill instances served inside the test process over real shared-memory channels: the same
 * server code a prefill-instance process runs, minus the fork (and the model load).
 */
export function inProcessPrefill(
  model: LoadedModel,
  backend: KernelBackend,
  maxTokens: number,
  kvMemory = 64 << 20,
): { opener: PrefillOpener; servers: PrefillServer[] } {
  const servers: PrefillServer[] = [];
  const opener: PrefillOpener = () => ({
    open: async () => {
      const [decodeSide, prefillSide] = createShmChannelPair();
      servers.push(
        new PrefillServer(prefillSide, model, backend, backend, { kvMemory, log: () => {} }, maxTokens),
      );
      return decodeSide;
    },
  });
  return { opener, servers };
}
