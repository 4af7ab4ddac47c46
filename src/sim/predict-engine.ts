import type { OutputReserveOptions } from "../util/output-reserve.js";
import type { DeviceProfile } from "./profile.js";
import { CachingBlockPool } from "./replica/caching-pool.js";
import { BlockPool } from "./replica/kv-blocks.js";
import { HybridSpace, type KvSpace, SinglePool } from "./replica/kv-space.js";
import { AttentionWorkersCost, ColocatedCost, PdCost, type PlacementCost } from "./replica/placement-cost.js";
import { profileForModel, sideRates, stallFactor } from "./replica/rates.js";
import { type ReplicaRequest, type ReplicaResult, runReplica } from "./replica/run.js";
import { type EngineOverheads, SideCost } from "./replica/step-cost.js";
import type { SimModel } from "./types.js";

/** Every placement our runtime has, with the knobs that change its timing. */
export type EnginePlacement =
  | { readonly kind: "colocated"; readonly threads: number }
  | {
      readonly kind: "attention-workers";
      readonly workers: number;
      readonly pipelineDepth: number;
      readonly modelThreads: number;
      /** Kernel threads of each attention worker (1 for spawned workers). */
      readonly attentionThreads: number;
      /**
       * Model worker processes the micro-batches rotate over (Lamina's a; --model-workers), each
       * with modelThreads; absent: the engine thread is the one model side.
       */
      readonly modelWorkers?: number;
    }
  | {
      readonly kind: "pd" | "adrenaline";
      readonly prefillInstances: number;
      readonly decodeThreads: number;
      readonly prefillThreads: number;
      /** Kernel threads of each prefill instance's attention executor. */
      readonly executorThreads: number;
      /** KV blocks of each prefill instance's attention executor (--prefill-kv-memory). */
      readonly prefillKvBlocks: number;
      /** --offload-ratio (N/M), or null for the load-aware bound. */
      readonly offloadRatio?: number | null;
    };

/** The engine's sizes (placement/sizes.ts): batch cap, token budget, KV blocks, context. */
export interface EngineShape {
  readonly maxRunning: number;
  readonly maxTokensPerStep: number;
  /** KV blocks of the engine's own cache (or of its attention workers, all together). */
  readonly kvBlocks: number;
  readonly blockSize: number;
  readonly maxContext: number;
  /** The scheduler's output reserve (EngineOptions.outputReserve); the runtime's default if absent. */
  readonly outputReserve?: OutputReserveOptions;
  /**
   * Prefix caching (the runtime's default where the placement offers it: not PD / Adrenaline),
   * replayed on the requests' blockKeys; default false.
   */
  readonly prefixCaching?: boolean;
}

export interface EngineRunPrediction extends ReplicaResult {
  /** Adrenaline: the load-aware bound (util/offload-bound.ts, as the runtime computes it) and decisions. */
  readonly offload?: { bound: number; limit: number; kept: number; maxRatioSeen: number; decisions: number };
}

/**
 * Predicts a run of our own engine on this profiled machine: the requests replayed through a
 * replica of its scheduler and KV placement (replica/), each step timed from the device profile.
 * One function for every placement, so all of them are predicted from the same measurement.
 */
export function predictEngineRun(
  measured: DeviceProfile,
  model: SimModel,
  requests: readonly ReplicaRequest[],
  shape: EngineShape,
  placement: EnginePlacement,
): EngineRunPrediction {
  const cost = placementCost(measured, model, placement);
  let kv: KvSpace = new SinglePool(
    shape.prefixCaching
      ? new CachingBlockPool(shape.kvBlocks, shape.blockSize)
      : new BlockPool(shape.kvBlocks, shape.blockSize),
  );
  let hybrid: HybridSpace | null = null;
  let instances = 0;
  if (placement.kind === "pd" || placement.kind === "adrenaline") {
    instances = placement.prefillInstances;
    hybrid = new HybridSpace(
      new BlockPool(shape.kvBlocks, shape.blockSize),
      Array.from({ length: instances }, () => new BlockPool(placement.prefillKvBlocks, shape.blockSize)),
      {
        mode: placement.kind,
        offloadRatio: placement.offloadRatio ?? null,
        maxBatch: shape.maxRunning,
        decodeThreads: placement.decodeThreads,
        executorThreads: placement.executorThreads,
        blocksPerRequest: Math.ceil(shape.maxContext / shape.blockSize),
      },
    );
    kv = hybrid;
  }
  const r = runReplica(requests, {
    maxRunning: shape.maxRunning,
    maxTokensPerStep: Math.max(shape.maxTokensPerStep, shape.maxRunning),
    prefillInstances: instances,
    kv,
    cost,
    maxContext: shape.maxContext,
    ...(shape.outputReserve ? { outputReserve: shape.outputReserve } : {}),
  });
  if (!hybrid) return r;
  const b = hybrid.bound();
  return {
    ...r,
    offload: {
      bound: b.bound,
      limit: hybrid.limit(),
      kept: hybrid.kept,
      maxRatioSeen: hybrid.maxRatioSeen,
      decisions: hybrid.decisions,
    },
  };
}

/**
 * How long the placement takes to land its micro-batches on this profiled machine: the step model
 * predictEngineRun replays with, also used to predict single measured steps.
 */
export function placementCost(
  measured: DeviceProfile,
  model: SimModel,
  placement: EnginePlacement,
): PlacementCost {
  const profile = profileForModel(measured, model);
  const o = overheadsFor(profile, placement);
  const side = (threads: number) => new SideCost(model, sideRates(profile, threads));
  if (placement.kind === "colocated") return new ColocatedCost(side(placement.threads), o);
  if (placement.kind === "attention-workers")
    return new AttentionWorkersCost(
      placement.pipelineDepth,
      side(placement.modelThreads),
      side(placement.attentionThreads),
      placement.workers,
      o,
      placement.modelWorkers ?? 1,
    );
  return new PdCost(
    side(placement.decodeThreads),
    side(placement.prefillThreads),
    side(placement.executorThreads),
    o,
  );
}

/**
 * The engine's fixed step costs for the thread count its model side (or decode instance) runs,
 * times that thread count's host stall (the costs are medians of short runs, as the rates are).
 */
function overheadsFor(p: DeviceProfile, placement: EnginePlacement): EngineOverheads {
  const threads =
    placement.kind === "colocated"
      ? placement.threads
      : placement.kind === "attention-workers"
        ? placement.modelThreads
        : placement.decodeThreads;
  const s = p.split;
  const useSplit = s !== undefined && s.modelThreads === threads && threads !== p.threads;
  const stall = stallFactor(p, threads);
  return {
    layerS: stall * ((useSplit ? s.layerOverheadS : undefined) ?? p.layerOverheadS),
    tokenS: stall * ((useSplit ? s.tokenOverheadS : undefined) ?? p.tokenOverheadS ?? 0),
    latencyS: p.transport.latencyS,
    messageLatencyS: p.transport.messageLatencyS ?? p.transport.latencyS,
    linkBytesPerS: p.transport.bandwidth,
    ...(p.transport.kvHandoff ? { kvHandoff: p.transport.kvHandoff } : {}),
  };
}
