import { rng, type Trace } from "../../src/sim/trace.js";
import type { CalibrationRequest } from "./decode-run.js";

export interface WorkloadOptions {
  readonly requests: number;
  /** Prompt and output lengths are divided by these (the small model's context is far shorter). */
  readonly promptDivisor: number;
  readonly outputDivisor: number;
  readonly maxPrompt: number;
  readonly maxOutput: number;
  readonly seed: number;
}

/**
 * A small workload from a real trace: `requests` rows drawn without replacement (seeded), lengths
 * scaled down to a small model's context and clamped; every output is at least 2 tokens so each
 * request reaches the decode phase.
 */
export function scaledWorkload(trace: Trace, o: WorkloadOptions): CalibrationRequest[] {
  const n = trace.prompt.length;
  if (o.requests > n) throw new Error(`workload: ${o.requests} requests asked, trace ${trace.name} has ${n}`);
  const next = rng(o.seed);
  const picked = new Set<number>();
  while (picked.size < o.requests) picked.add(Math.floor(next() * n));
  return [...picked].map((i) => ({
    prompt: clamp(Math.round(trace.prompt[i]! / o.promptDivisor), 2, o.maxPrompt),
    output: clamp(Math.round(trace.output[i]! / o.outputDivisor), 2, o.maxOutput),
  }));
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}
