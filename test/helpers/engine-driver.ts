import { LocalAttentionService } from "../../src/attention/local-service.js";
import type { AttentionService } from "../../src/attention/service.js";
import type {
  FinishReason,
  GenerateRequest,
  SamplingParams,
  TokenEvent,
  TokenLogprob,
} from "../../src/engine/api.js";
import type { EngineCore } from "../../src/engine/engine-core.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { sliceModel } from "../../src/graph/converter.js";
import { buildLlamaGraph } from "../../src/graph/llama-graph.js";
import type { KernelBackend } from "../../src/kernels/backend.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import type { CoreOptions } from "../../src/placement/options.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import { SliceExecutor } from "../../src/runtime/executor.js";
import { createModelStep } from "../../src/runtime/step.js";

export interface Completion {
  tokens: number[];
  text: string;
  finishReason: FinishReason | undefined;
  logprobs: TokenLogprob[];
  events: TokenEvent[];
  error?: string;
}

/** Drives an in-process engine core until every request finishes (tests only; the server uses the worker). */
export async function runToCompletion(
  core: EngineCore,
  requests: readonly GenerateRequest[],
): Promise<Map<string, Completion>> {
  const out = new Map<string, Completion>();
  for (const r of requests) {
    core.add(r);
    out.set(r.id, { tokens: [], text: "", finishReason: undefined, logprobs: [], events: [] });
  }
  let guard = 0;
  while (core.hasWork) {
    if (++guard > 1_000_000) throw new Error("engine did not finish");
    for (const ev of await core.runStep()) {
      const c = out.get(ev.requestId)!;
      c.tokens.push(...ev.tokenIds);
      c.text += ev.text;
      c.events.push(ev);
      if (ev.logprobs) c.logprobs.push(...ev.logprobs);
      if (ev.finished) c.finishReason = ev.finishReason;
      if (ev.error) c.error = ev.error;
    }
  }
  return out;
}

export function greedy(maxTokens: number, extra: Partial<SamplingParams> = {}): SamplingParams {
  return resolveSamplingParams({ temperature: 0, maxTokens, ...extra });
}

/** Generates greedily for one prompt alone and returns its tokens. */
export async function generateAlone(
  model: LoadedModel,
  backend: KernelBackend,
  prompt: readonly number[],
  maxTokens: number,
  opts: CoreOptions = {},
  attention?: AttentionService,
): Promise<number[]> {
  const core = buildColocatedEngine(model, backend, opts, attention);
  const res = await runToCompletion(core, [
    { id: "solo", promptTokenIds: prompt, params: greedy(maxTokens, { ignoreEos: true }) },
  ]);
  return res.get("solo")!.tokens;
}

/**
 * Logits at every position of `tokens`, from one prefill through the real executor and
 * in-process paged attention (the same slices every placement runs).
 */
export async function logitsAllPositions(
  model: LoadedModel,
  backend: KernelBackend,
  tokens: readonly number[],
  blockSize = 16,
  service?: AttentionService,
): Promise<Float32Array[]> {
  const n = tokens.length;
  const sizes = resolveSizes(model, {
    maxRunning: n,
    maxTokensPerStep: n,
    blockSize,
    kvBlocks: Math.ceil(n / blockSize) + 1,
  });
  const exec = new SliceExecutor(
    sliceModel(buildLlamaGraph(model.config)),
    model.weights,
    backend,
    model.config,
    { maxTokens: n, maxLogitRows: n, microBatches: 1 },
  );
  const attention = service ?? new LocalAttentionService(backend, sizes.geometry, sizes.numBlocks);
  attention.reserve(7, n);
  const step = createModelStep(n, n, 0);
  step.nSeqs = 1;
  step.nTokens = n;
  step.seqIds[0] = 7;
  step.seqStart[0] = 0;
  step.seqStart[1] = n;
  for (let i = 0; i < n; i++) {
    step.tokens[i] = tokens[i]!;
    step.positions[i] = i;
    step.logitRows[i] = i;
  }
  step.nLogits = n;
  const logits = await exec.forward(step, attention);
  const V = model.config.vocabSize;
  return Array.from({ length: n }, (_, i) => logits.slice(i * V, (i + 1) * V));
}
