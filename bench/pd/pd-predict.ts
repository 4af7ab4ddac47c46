/**
 * The simulator's prediction of the PD / Adrenaline benchmark: the same model config, sizes, KV
 * budgets, thread split and trace slice, replayed through the replica of our engine
 * (sim/predict-engine.ts) with step times from this machine's device profile.
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import path from "node:path";
import { prefillThreadSplit } from "../../src/pd/thread-share.js";
import { modelFromHfConfig } from "../../src/sim/hf-config.js";
import { type EngineRunPrediction, predictEngineRun } from "../../src/sim/predict-engine.js";
import type { DeviceProfile } from "../../src/sim/profile.js";
import type { SimModel } from "../../src/sim/types.js";
import type { OutputReserveOptions } from "../../src/util/output-reserve.js";
import { PD_BLOCK_BYTES, PD_CONTEXT, PD_SIZES, type TraceRequest } from "./pd-setup.js";

export function predictPd(
  profile: DeviceProfile,
  modelDir: string,
  trace: readonly TraceRequest[],
  mode: "pd" | "adrenaline",
  offloadRatio: number | null = null,
  outputReserve?: OutputReserveOptions,
): EngineRunPrediction {
  const model = pdSimModel(modelDir);
  return predictEngineRun(
    profile,
    model,
    trace.map((t) => ({ arrival: t.at, prompt: t.prompt, output: t.output })),
    {
      maxRunning: PD_SIZES.maxRunning!,
      maxTokensPerStep: PD_SIZES.maxTokensPerStep!,
      kvBlocks: Math.floor(PD_SIZES.kvMemory! / PD_BLOCK_BYTES),
      blockSize: 16,
      maxContext: PD_CONTEXT,
      ...(outputReserve ? { outputReserve } : {}),
    },
    pdPlacement(mode, offloadRatio),
  );
}

/** The benchmark's PD or Adrenaline placement as the simulator describes it. */
export function pdPlacement(mode: "pd" | "adrenaline", offloadRatio: number | null = null) {
  // The runtime's split (placement/pd.ts): prefill gets --prefill-threads, the executor the other cores.
  const split = prefillThreadSplit(availableParallelism(), PD_SIZES.prefillThreads);
  return {
    kind: mode,
    prefillInstances: 1,
    decodeThreads: PD_SIZES.threads!,
    prefillThreads: split.prefill,
    executorThreads: split.attention,
    prefillKvBlocks: Math.floor(PD_SIZES.prefillKvMemory! / PD_BLOCK_BYTES),
    offloadRatio,
  };
}

/** The simulator's model of the benchmark's model directory (its config.json). */
export function pdSimModel(modelDir: string): SimModel {
  const file = path.join(modelDir, "config.json");
  return modelFromHfConfig(JSON.parse(readFileSync(file, "utf8")), file);
}
