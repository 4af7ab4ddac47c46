import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import type { KernelBackend } from "../../src/kernels/backend.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { type EngineRunner, TokenClock } from "./measure.js";

/** Our engine in-process: an engine core on the native backend, stepped to completion. */
export class OursRunner implements EngineRunner {
  readonly name = "lamina";

  constructor(
    private readonly model: LoadedModel,
    private readonly backend: KernelBackend,
    /** Engine options beside the runner's own (the KV dtype, say). */
    private readonly options: EngineOptions = {},
  ) {}

  async decode(prompts: readonly number[][], tokens: number): Promise<number> {
    const clock = new TokenClock(prompts.length);
    await this.run(prompts, tokens, clock);
    return clock.decodeTokensPerSecond();
  }

  async prefill(prompt: readonly number[]): Promise<number> {
    const start = performance.now();
    await this.run([prompt as number[]], 1, new TokenClock(1));
    return prompt.length / ((performance.now() - start) / 1000);
  }

  private async run(prompts: readonly number[][], tokens: number, clock: TokenClock): Promise<void> {
    const longest = Math.max(...prompts.map((p) => p.length));
    const core = buildColocatedEngine(this.model, this.backend, {
      ...this.options,
      maxRunning: prompts.length,
      maxTokensPerStep: Math.max(512, longest),
      maxModelLen: longest + tokens + 16,
      // One token a step, as llama.cpp decodes: the same work on both sides.
      speculativeTokens: 0,
    });
    const params = resolveSamplingParams({ temperature: 0, maxTokens: tokens, ignoreEos: true });
    prompts.forEach((p, i) => {
      core.add({ id: String(i), promptTokenIds: p, params });
    });
    while (core.hasWork) {
      const events = await core.runStep();
      const now = performance.now();
      for (const ev of events) {
        if (ev.error) throw new Error(`lamina request ${ev.requestId}: ${ev.error}`);
        if (ev.tokenIds.length > 0) clock.record(Number(ev.requestId), ev.tokenIds.length, now);
      }
    }
  }

  async close(): Promise<void> {}
}
