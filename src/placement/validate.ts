import type { EngineOptions } from "./options.js";

/** The placements the builder assembles. */
export type PlacementKind = "colocated" | "attention-workers" | "pd" | "adrenaline";

/** Throws a clear error naming both flags when two exclusive ones are given together. */
function exclusive(a: unknown, aFlag: string, b: unknown, bFlag: string): void {
  if (a !== undefined && b !== undefined)
    throw new Error(`${aFlag} and ${bFlag} are exclusive: use one or the other`);
}

function positiveInt(v: number | undefined, flag: string, min: number): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= min))
    throw new Error(`${flag} must be an integer ≥ ${min} (got ${v})`);
}

/** The shared secret for processes at addresses: the option, else LAMINA_ATTENTION_TOKEN. */
export function attentionToken(o: EngineOptions): string | undefined {
  return o.attentionToken ?? process.env.LAMINA_ATTENTION_TOKEN;
}

/** Model workers asked for: spawned (`--model-workers`) or at addresses; undefined for none. */
export function modelWorkerCount(o: EngineOptions): number | undefined {
  return o.modelWorkers ?? (o.modelWorkerAddrs?.length ? o.modelWorkerAddrs.length : undefined);
}

/** Processes at addresses authenticate with the shared secret: throws, naming them, when there is none. */
function needsSecret(o: EngineOptions, addrs: readonly string[] | undefined, what: string): void {
  if ((addrs?.length ?? 0) > 0 && !attentionToken(o))
    throw new Error(
      `${what} at given addresses need the shared secret: --attention-token or LAMINA_ATTENTION_TOKEN`,
    );
}

/**
 * Every consistency check on the placement flags, in one place: exclusive flags, flags that need
 * a mode, and secrets for processes at addresses. Returns which placement the options ask for.
 */
export function validatePlacement(o: EngineOptions): PlacementKind {
  const mode = o.mode ?? "colocated";
  const spawned = o.attentionWorkers ?? 0;
  const addrs = o.attentionWorkerAddrs ?? [];
  exclusive(o.attentionWorkers, "--attention-workers", addrs[0], "--attention-worker-addrs");
  exclusive(
    o.prefillInstances,
    "--prefill-instances",
    o.prefillInstanceAddrs?.[0],
    "--prefill-instance-addrs",
  );
  exclusive(o.prefillThreads, "--prefill-threads", o.prefillTtftMs, "--prefill-ttft-ms");
  positiveInt(o.pipelineDepth, "--pipeline-depth", 1);
  positiveInt(o.attentionTimeoutMs, "--attention-timeout-ms", 1);
  positiveInt(o.spinMicros, "--spin-us", 0);
  positiveInt(o.prefillInstances, "--prefill-instances", 1);
  positiveInt(o.modelWorkers, "--model-workers", 1);
  positiveInt(o.modelWorkerThreads, "--model-worker-threads", 1);
  positiveInt(o.attentionWorkerThreads, "--attention-worker-threads", 1);
  if (o.attentionWorkerThreads !== undefined && spawned < 1)
    throw new Error(
      "--attention-worker-threads needs --attention-workers N (a worker at an address sets its own --threads)",
    );
  exclusive(o.modelWorkers, "--model-workers", o.modelWorkerAddrs?.[0], "--model-worker-addrs");
  if (o.modelWorkerThreads !== undefined && o.modelWorkers === undefined)
    throw new Error(
      "--model-worker-threads needs --model-workers (a model worker at an address sets its own --threads)",
    );
  if (o.modelPlane !== undefined && modelWorkerCount(o) === undefined)
    throw new Error("--model-plane needs model workers (--model-workers N or --model-worker-addrs)");
  if ((o.modelWorkerAddrs?.length ?? 0) > 32)
    throw new Error("--model-worker-addrs: at most 32 model workers");
  needsSecret(o, o.modelWorkerAddrs, "model workers");
  if (modelWorkerCount(o) !== undefined) {
    if (mode !== "colocated") throw new Error(`--model-workers does not combine with --mode ${mode}`);
    if (spawned < 1 && addrs.length === 0)
      throw new Error(
        "model workers need attention workers (--attention-workers N or --attention-worker-addrs): they hold the KV cache",
      );
    if (o.backend === "reference")
      throw new Error("--model-workers needs the native kernels (their data plane)");
  }
  if (o.prefillTtftMs !== undefined && !(o.prefillTtftMs > 0))
    throw new Error(`--prefill-ttft-ms must be positive (got ${o.prefillTtftMs})`);
  if (o.offloadRatio !== undefined && (!(o.offloadRatio >= 0) || mode !== "adrenaline"))
    throw new Error("--offload-ratio needs --mode adrenaline and a ratio ≥ 0");
  if (mode === "colocated") {
    needsSecret(o, addrs, "attention workers");
    return spawned > 0 || addrs.length > 0 ? "attention-workers" : "colocated";
  }
  if (spawned > 0 || addrs.length > 0)
    throw new Error(`--mode ${mode} does not combine with attention workers`);
  needsSecret(o, o.prefillInstanceAddrs, "prefill instances");
  return mode;
}
