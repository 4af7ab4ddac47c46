import { availableParallelism } from "node:os";
import path from "node:path";
import { RemoteAttentionService, type WorkerEndpoint } from "../attention/remote-service.js";
import type { AttentionService } from "../attention/service.js";
import { AddressedWorker, SpawnedWorker } from "../attention/spawn.js";
import type { KernelBackend } from "../kernels/backend.js";
import { loadKernelBackend } from "../kernels/index.js";
import { loadModel } from "../model/load.js";
import type { LoadedModel } from "../model/types.js";
import type { ModelInfo } from "./api.js";
import { buildEngineCore, DEFAULT_KV_MEMORY, resolveSizes } from "./build-core.js";
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
export async function setupEngine(
  options: EngineOptions,
  log: (line: string) => void = () => {},
): Promise<EngineSetup> {
  const spawned = options.attentionWorkers ?? 0;
  // Locally spawned attention workers get a core each; the model side keeps the rest.
  const threads =
    options.threads ?? (spawned > 0 ? Math.max(1, availableParallelism() - spawned) : undefined);
  const backend = loadKernelBackend({ backend: options.backend ?? "auto", ...(threads ? { threads } : {}) });
  const model = await loadModel(
    options.model,
    options.tokenizerPath ? { tokenizerPath: options.tokenizerPath } : {},
  );
  const core = await buildCore(model, backend, options, log);
  const info: ModelInfo = {
    id: servedModelId(options, model),
    label: model.source.label,
    contextLength: core.options.maxContext,
    vocabSize: model.config.vocabSize,
    generation: model.generation,
  };
  return { core, model, backend, info };
}

/** The engine core for the placement the options ask for (colocated, disaggregated, pd, adrenaline). */
async function buildCore(
  model: LoadedModel,
  backend: KernelBackend,
  options: EngineOptions,
  log: (line: string) => void,
): Promise<EngineCore> {
  const mode = options.mode ?? "colocated";
  if (mode === "colocated")
    return buildEngineCore(model, backend, options, await createAttention(model, options, log));
  if ((options.attentionWorkers ?? 0) > 0 || (options.attentionWorkerAddrs?.length ?? 0) > 0)
    throw new Error(`--mode ${mode} does not combine with attention workers`);
  const { buildPdEngineCore } = await import("../pd/setup.js");
  return (await buildPdEngineCore(model, backend, options, log)).core;
}

/**
 * The attention placement the options ask for: in-process (undefined), locally spawned attention
 * workers, or workers already running at given addresses.
 */
export async function createAttention(
  model: LoadedModel,
  options: EngineOptions,
  log: (line: string) => void,
): Promise<AttentionService | undefined> {
  const addrs = options.attentionWorkerAddrs ?? [];
  const spawned = options.attentionWorkers ?? 0;
  if (addrs.length === 0 && spawned === 0) return undefined;
  if (addrs.length > 0 && spawned > 0)
    throw new Error("use either --attention-workers or --attention-worker-addrs, not both");
  const endpoints: WorkerEndpoint[] = [];
  if (addrs.length > 0) {
    const token = options.attentionToken ?? process.env.LAMINA_ATTENTION_TOKEN;
    if (!token)
      throw new Error(
        "attention workers at given addresses need the shared secret: --attention-token or LAMINA_ATTENTION_TOKEN",
      );
    for (const a of addrs) endpoints.push(AddressedWorker.parse(a, token, log));
  } else {
    for (let i = 0; i < spawned; i++) {
      endpoints.push(
        new SpawnedWorker(`local-${i}`, {
          transport: options.transport ?? "shm",
          kvMemory: options.kvMemory ?? DEFAULT_KV_MEMORY,
          threads: 1,
          log,
        }),
      );
    }
  }
  const sizes = resolveSizes(model, options);
  return RemoteAttentionService.connect(endpoints, {
    partition: options.partition ?? "head",
    geometry: sizes.geometry,
    kvMemory: options.kvMemory ?? null,
    maxTags: Math.max(1, options.pipelineDepth ?? 2),
    log,
  });
}
