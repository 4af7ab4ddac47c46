import { RemoteAttentionService, type WorkerEndpoint } from "../attention/remote-service.js";
import { allowedCpus, BOUND_PURE_SPIN_US, bindThisProcess, formatCpuList } from "../kernels/cpus.js";
import { AddressedWorker, SpawnedWorker } from "./attention-worker-endpoints.js";
import { type CoreBinding, planCoreBinding } from "./core-binding.js";
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
    const threads = options.attentionWorkerThreads ?? 1;
    // Model workers (shareDataPlane) run the model side in processes of their own: nothing to bind here.
    const cores = options.coreBinding && !shareDataPlane ? bindCores(options, threads, log) : null;
    for (let i = 0; i < (options.attentionWorkers ?? 0); i++) {
      const cpus = cores?.workers[i];
      endpoints.push(
        new SpawnedWorker(`local-${i}`, {
          transport: options.transport ?? "shm",
          kvMemory: options.kvMemory ?? DEFAULT_KV_MEMORY,
          threads,
          ...(cpus ? { cpus } : {}),
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

/**
 * Binds this process to the model side's cores of the plan and returns the plan (the workers bind
 * themselves as they start), or logs why the cores stay unbound and returns null.
 */
function bindCores(
  options: EngineOptions,
  workerThreads: number,
  log: (line: string) => void,
): CoreBinding | null {
  const allowed = allowedCpus();
  const plan =
    allowed.length === 0
      ? "this process's CPUs are unknown here (no native kernel addon)"
      : planCoreBinding(allowed, options.attentionWorkers ?? 0, workerThreads, options.threads);
  if (typeof plan === "string") {
    log(`cores: not bound (${plan})`);
    return null;
  }
  try {
    bindThisProcess(plan.model);
  } catch (e) {
    log(`cores: not bound (${(e as Error).message})`);
    return null;
  }
  const workers = plan.workers.map((w, i) => `local-${i} on ${formatCpuList(w)}`).join(", ");
  log(
    `cores: model side on ${formatCpuList(plan.model)}, attention worker${plan.workers.length === 1 ? "" : "s"} ${workers}, waits spinning alone up to ${BOUND_PURE_SPIN_US} µs (--no-core-binding leaves them to the scheduler)`,
  );
  return plan;
}
