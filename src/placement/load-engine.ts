import { availableParallelism } from "node:os";
import path from "node:path";
import type { ModelInfo } from "../engine/api.js";
import type { EngineCore } from "../engine/engine-core.js";
import type { KernelBackend } from "../kernels/backend.js";
import { loadKernelBackend } from "../kernels/index.js";
import { loadModel } from "../model/load.js";
import type { LoadedModel } from "../model/types.js";
import { type BuildContext, buildEngine } from "./build.js";
import type { EngineOptions } from "./options.js";
import { modelWorkerCount, validatePlacement } from "./validate.js";

export interface EngineSetup {
  readonly core: EngineCore;
  readonly model: LoadedModel;
  readonly backend: KernelBackend;
  readonly info: ModelInfo;
}

/** The id a model is served under: the configured name, "random", or the path's last component. */
export function servedModelId(options: EngineOptions, model: LoadedModel): string {
  if (options.servedModelName) return options.servedModelName;
  if (model.source.kind === "demo") return "random";
  const p = model.source.path.replace(/[\\/]+$/, "");
  const base = path.basename(p);
  return base === "hf" ? path.basename(path.dirname(p)) : base.replace(/\.(bin|gguf)$/, "");
}

/** Kernel threads of the model side: asked for, else the cores the spawned attention workers leave. */
function modelThreads(options: EngineOptions): number | undefined {
  if (options.threads !== undefined) return options.threads;
  const spawned = (options.attentionWorkers ?? 0) * (options.attentionWorkerThreads ?? 1);
  // Locally spawned attention workers get a core for each of their threads; the model side keeps the rest.
  return spawned > 0 ? Math.max(1, availableParallelism() - spawned) : undefined;
}

/** Loads the model and kernels and builds the engine for the placement the options ask for. */
export async function loadEngine(options: EngineOptions, context: BuildContext = {}): Promise<EngineSetup> {
  validatePlacement(options); // fail on bad flags before the model loads
  const threads = modelThreads(options);
  const backend = loadKernelBackend({
    backend: options.backend ?? "auto",
    ...(threads ? { threads } : {}),
    ...(options.weightPacking === false ? { weightPacking: false } : {}),
  });
  // With model workers the weights live in their processes; this one checks the files' headers
  // and keeps the config, the tokenizer and what configures the attention side (gpt-oss's sinks).
  const model = await loadModel(options.model, {
    ...(options.tokenizerPath ? { tokenizerPath: options.tokenizerPath } : {}),
    weights: modelWorkerCount(options) ? "attention" : true,
  });
  const core = await buildEngine(model, backend, options, context);
  const info: ModelInfo = {
    id: servedModelId(options, model),
    label: model.source.label,
    contextLength: core.options.maxContext,
    vocabSize: model.config.vocabSize,
    generation: model.generation,
  };
  return { core, model, backend, info };
}
