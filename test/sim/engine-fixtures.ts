import type { DeviceProfile } from "../../src/sim/profile.js";
import type { SimModel } from "../../src/sim/types.js";

/** A 2-core device profile with round numbers, for the engine-prediction tests. */
export const TWO_CORE_PROFILE: DeviceProfile = {
  version: 1,
  name: "test-2core",
  memoryBytes: 8e9,
  threads: 2,
  gemm: { peakFlops: 1e11, halfBatch: 4 },
  weightBandwidth: 2e10,
  attentionBandwidth: 2e10,
  layerOverheadS: 2e-5,
  tokenOverheadS: 5e-5,
  transport: { bandwidth: 5e9, latencyS: 2e-5 },
  prefill: { threads: 1, flops: 6e10 },
  split: {
    modelThreads: 1,
    attentionThreads: 1,
    gemm: { peakFlops: 5e10, halfBatch: 4 },
    weightBandwidth: 1.2e10,
    attentionBandwidth: 1.2e10,
  },
};
/** The PD benchmark's model (hidden 512, 8 layers), as the simulator describes it. */
export const PD_BENCH_MODEL: SimModel = {
  name: "pd-bench",
  aliases: [],
  source: "test",
  params: 25.6e6,
  weightBytes: 51e6,
  layers: 8,
  hidden: 512,
  heads: 8,
  kvHeads: 8,
  headDim: 64,
  intermediate: 1376,
  vocab: 258,
  bytesPerElement: 2,
};
