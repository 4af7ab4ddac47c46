import { RemoteAttentionService, type WorkerEndpoint } from "../attention/remote-service.js";
import { AddressedWorker, SpawnedWorker } from "./attention-worker-endpoints.js";
import type { EngineOptions } from "./options.js";
import { DEFAULT_KV_MEMORY, type EngineSizes } from "./sizes.js";
import { attentionToken } from "./validate.js";

/**
 * Lamina's placement: the KV cache and attention on attention workers, either spawned here (one
 * core each, over shared memory or TCP) or already running at addresses (TCP, shared secret).
 */
export async function connectAttentionWorkers(
  sizes: EngineSizes,
  options: EngineOptions,
  microBatches: number,
  log: (line: string) => void,
  /** Model workers post the layers too: keep the segments' names for them to map. */
  shareDataPlane = false,
): Promise<RemoteAttentionService> {
  const addrs = options.attentionWorkerAddrs ?? [];
  const endpoints: WorkerEndpoint[] = [];
  if (addrs.length > 0) {
    const token = attentionToken(options)!;
    for (const a of addrs) endpoints.push(AddressedWorker.parse(a, token, log));
  } else {
    for (let i = 0; i < (options.attentionWorkers ?? 0); i++) {
      endpoints.push(
        new SpawnedWorker(`local-${i}`, {
          transport: options.transport ?? "shm",
          kvMemory: options.kvMemory ?? DEFAULT_KV_MEMORY,
          threads: options.attentionWorkerThreads ?? 1,
          ...(options.spinMicros !== undefined ? { spinMicros: options.spinMicros } : {}),
          log,
        }),
      );
    }
  }
  return RemoteAttentionService.connect(endpoints, {
    partition: options.partition ?? "head",
    geometry: sizes.geometry,
    kvMemory: options.kvMemory ?? null,
    microBatches,
    ...(options.attentionTimeoutMs !== undefined ? { replyTimeoutMs: options.attentionTimeoutMs } : {}),
    ...(options.spinMicros !== undefined ? { spinMicros: options.spinMicros } : {}),
    shareDataPlane,
    log,
  });
}
