import path from "node:path";
import type { KernelBackend } from "../kernels/backend.js";
import { loadKernelBackend } from "../kernels/index.js";
import { loadModel } from "../model/load.js";
import type { LoadedModel } from "../model/types.js";
import type { ModelInfo } from "./api.js";
import { buildEngineCore } from "./build-core.js";
import type { EngineCore } from "./engine-core.js";
import type { EngineOptions } from "./options.js";

export interface EngineSetup {
  readonly core: EngineCore;
  readonly model: LoadedModel;
  readonly backend: KernelBackend;
  readonly info: ModelInfo;
}

/** The id a model is served under: the configured name, "demo", or the path's last component. */
export function servedModelId(options: EngineOptions, model: LoadedModel): string {
  if (options.servedModelName) return options.servedModelName;
  if (model.source.kind === "demo") return "demo";
  const p = model.source.path.replace(/[\\/]+$/, "");
  const base = path.basename(p);
  return base === "hf" ? path.basename(path.dirname(p)) : base.replace(/\.bin$/, "");
}

/** Loads the model and kernels and builds the engine core (in whichever thread calls it). */
export async function setupEngine(options: EngineOptions): Promise<EngineSetup> {
  const backend = loadKernelBackend({
    backend: options.backend ?? "auto",
    ...(options.threads ? { threads: options.threads } : {}),
  });
  const model = await loadModel(
    options.model,
    options.tokenizerPath ? { tokenizerPath: options.tokenizerPath } : {},
  );
  const core = buildEngineCore(model, backend, options);
  const info: ModelInfo = {
    id: servedModelId(options, model),
    label: model.source.label,
    contextLength: core.options.maxContext,
    vocabSize: model.config.vocabSize,
    generation: model.generation,
  };
  return { core, model, backend, info };
}
