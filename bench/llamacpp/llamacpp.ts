import {
  getLlama,
  type Llama,
  type LlamaContext,
  LlamaLogLevel,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import { type EngineRunner, TokenClock } from "./measure.js";

/**
 * llama.cpp through node-llama-cpp's prebuilt CPU binary (never built or downloaded here), one
 * context per scenario with one sequence per prompt, so concurrent sequences share batches.
 */
export class LlamaCppRunner implements EngineRunner {
  readonly name = "llama.cpp";
  /** What the contexts ran with, for the report. */
  flashAttention: string | undefined;

  private constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly threads: number,
  ) {}

  static async open(gguf: string, threads: number): Promise<LlamaCppRunner> {
    const llama = await getLlama({
      gpu: false,
      build: "never",
      skipDownload: true,
      usePrebuiltBinaries: true,
      progressLogs: false,
      logLevel: LlamaLogLevel.error,
      maxThreads: threads,
    });
    const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
    return new LlamaCppRunner(llama, model, threads);
  }

  get binary(): string {
    return `${this.llama.buildType} build, llama.cpp ${this.llama.llamaCppRelease.release}`;
  }

  private async context(sequences: number, perSequence: number): Promise<LlamaContext> {
    const ctx = await this.model.createContext({
      sequences,
      contextSize: perSequence,
      batchSize: 512,
      threads: { ideal: this.threads, min: this.threads },
    });
    this.flashAttention = String(ctx.flashAttention);
    return ctx;
  }

  async decode(prompts: readonly number[][], tokens: number): Promise<number> {
    const longest = Math.max(...prompts.map((p) => p.length));
    const ctx = await this.context(prompts.length, longest + tokens + 16);
    try {
      const clock = new TokenClock(prompts.length);
      await Promise.all(
        prompts.map(async (p, i) => {
          const seq = ctx.getSequence();
          let n = 0;
          // yieldEogToken: random weights may pick EOS, which must not end the run early.
          for await (const _ of seq.evaluate(p as Token[], { temperature: 0, yieldEogToken: true })) {
            clock.record(i, 1, performance.now());
            if (++n >= tokens) break;
          }
        }),
      );
      return clock.decodeTokensPerSecond();
    } finally {
      await ctx.dispose();
    }
  }

  async prefill(prompt: readonly number[]): Promise<number> {
    const ctx = await this.context(1, prompt.length + 16);
    try {
      const seq = ctx.getSequence();
      const start = performance.now();
      for await (const _ of seq.evaluate(prompt as Token[], { temperature: 0, yieldEogToken: true })) break;
      return prompt.length / ((performance.now() - start) / 1000);
    } finally {
      await ctx.dispose();
    }
  }

  async close(): Promise<void> {
    await this.model.dispose();
    await this.llama.dispose();
  }
}
