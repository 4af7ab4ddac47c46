import assert from "node:assert/strict";
import path from "node:path";
import type { GenerateRequest } from "../../src/engine/api.js";
import type { EngineCore } from "../../src/engine/engine-core.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine, buildEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { ModelWorkerExecutor } from "../../src/runtime/model-worker-executor.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "./backends.js";
import { greedy, runToCompletion } from "./engine-driver.js";

/** Engines whose slices run on model worker processes, and what their tests compare them with. */
export const backend = nativeBackend();
export const storiesDir = path.join(sharedDataPath("models", "stories260K"), "hf");

/** Prompts of different lengths, so micro-batches carry prefill chunks and decode rows at once. */
export function requests(model: LoadedModel, n = 5, maxTokens = 20): GenerateRequest[] {
  const prompts = [
    "Once upon a time",
    "The little dog",
    "Lily and Ben went to the park and",
    "Tom",
    "A big red",
  ];
  return prompts.slice(0, n).map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: model.tokenizer.encode(p),
    params: greedy(maxTokens, { ignoreEos: true }),
  }));
}

export async function colocated(model: LoadedModel, reqs: GenerateRequest[]): Promise<number[][]> {
  const core = buildColocatedEngine(model, backend, { maxTokensPerStep: 16 });
  return [...(await runToCompletion(core, reqs)).values()].map((c) => c.tokens);
}

export async function closeCore(core: EngineCore): Promise<void> {
  await core.executor.close?.();
  await core.attention.close();
}

export async function withModelWorkers<T>(
  model: LoadedModel,
  dir: string,
  o: EngineOptions,
  body: (core: EngineCore, ex: ModelWorkerExecutor) => Promise<T>,
): Promise<T> {
  const core = await buildEngine(model, backend, { model: dir, maxTokensPerStep: 16, ...o });
  try {
    assert.ok(core.executor instanceof ModelWorkerExecutor, "the slices run on model workers");
    return await body(core, core.executor);
  } finally {
    await closeCore(core);
  }
}
