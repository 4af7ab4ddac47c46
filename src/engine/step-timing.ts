import type { AttentionServiceStats } from "../attention/service.js";
import type { StepTiming } from "../runtime/step.js";
import type { EngineStats } from "./api.js";

/**
 * Where the engine's wall time went. In-process, the executor's wait on attention is attention.
 * Remote workers report their compute, and the rest of the model side's wait is transport. Under
 * pipelining a micro-batch's wait also spans the others' model compute, so the wait on the model
 * side's critical path is bounded by the time it was not computing; attention compute of workers
 * running in parallel overlaps too.
 */
export function stepTimingStats(
  executor: StepTiming,
  wallSeconds: number,
  service: AttentionServiceStats | undefined,
): EngineStats["timing"] {
  const { model, attention: wait, steps } = executor;
  const reported = service?.reportedMicros;
  const idle = Math.max(0, wallSeconds - model);
  const polling = service?.pollSeconds ?? 0;
  if (reported === undefined) return { model, attention: wait, transport: 0, idle, steps, polling };
  const attention = reported / 1e6;
  const waitOnPath = Math.min(wait, idle);
  const transport = Math.max(0, waitOnPath - attention / Math.max(1, service?.liveWorkers ?? 1));
  return { model, attention, transport, idle, steps, polling };
}
