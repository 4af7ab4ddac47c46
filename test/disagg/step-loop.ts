import type { GenerateRequest } from "../../src/engine/api.js";
import type { EngineCore } from "../../src/engine/engine-core.js";

/**
 * Drives an engine core step by step (as the engine worker thread does) and calls `before(step)`
 * ahead of each step, so a test can disturb the attention side at a chosen point mid-generation.
 * Returns each request's tokens, in request order, and any error a request finished with.
 */
export async function stepLoop(
  core: EngineCore,
  requests: readonly GenerateRequest[],
  before: (step: number) => void | Promise<void> = () => {},
): Promise<{ tokens: number[][]; errors: string[]; unavailable: number; steps: number }> {
  const tokens = new Map<string, number[]>();
  const errors: string[] = [];
  let unavailable = 0;
  for (const r of requests) {
    core.add(r);
    tokens.set(r.id, []);
  }
  let step = 0;
  while (core.hasWork) {
    if (step > 10_000) throw new Error("engine did not finish within 10000 steps");
    await before(step);
    for (const ev of await core.runStep()) {
      tokens.get(ev.requestId)!.push(...ev.tokenIds);
      if (ev.error) errors.push(`${ev.requestId}: ${ev.error}`);
      if (ev.unavailable) unavailable++;
    }
    step++;
  }
  return { tokens: requests.map((r) => tokens.get(r.id)!), errors, unavailable, steps: step };
}
