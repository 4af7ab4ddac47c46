import { loadKernelBackend } from "../kernels/index.js";
import { loadModel } from "../model/load.js";
import type { LoadedModel } from "../model/types.js";
import type { Channel } from "../transport/channel.js";
import { PrefillServer } from "./prefill-server.js";
import { threadShare } from "./thread-share.js";

/** What a prefill instance process loads, however decode instances reach it (shm or TCP). */
export interface PrefillHostSettings {
  readonly model?: string;
  readonly tokenizerPath?: string;
  readonly backend: "auto" | "native" | "reference";
  /** KV budget of the attention executor, per decode-instance connection. */
  readonly kvMemory: number;
  readonly prefillThreads: number;
  readonly attentionThreads: number;
  /** Largest prefill step (tokens) a decode instance may send. */
  readonly maxTokens: number;
}

export interface PrefillHost {
  readonly model: LoadedModel;
  /** Serves one decode instance's connection: prefill plus an attention executor with its own KV. */
  serve(channel: Channel, log: (line: string) => void): PrefillServer;
}

/**
 * Loads the model and kernels of a prefill instance once; prefill and the attention executor share
 * the kernel thread pool under the configured split (thread-share.ts).
 */
export async function openPrefillHost(s: PrefillHostSettings): Promise<PrefillHost> {
  // Prefill's batches read quantized weights as stored: no packed copy for decode here.
  const backend = loadKernelBackend({ backend: s.backend, threads: s.prefillThreads, weightPacking: false });
  const pool = { current: s.prefillThreads };
  const prefill = threadShare(backend, s.prefillThreads, pool);
  const attention = threadShare(backend, s.attentionThreads, pool);
  const model = await loadModel(s.model, s.tokenizerPath ? { tokenizerPath: s.tokenizerPath } : {});
  return {
    model,
    serve: (channel, log) =>
      new PrefillServer(channel, model, prefill, attention, { kvMemory: s.kvMemory, log }, s.maxTokens),
  };
}
