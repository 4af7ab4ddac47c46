import {
  attentionTime,
  minimumBandwidth,
  type NonAttentionTime,
  nonAttentionTime,
  transferBytesPerStep,
} from "./cost-model.js";
import type { Efficiency } from "./efficiency.js";
import type { Accelerator, SimModel } from "./types.js";

export interface BandwidthPoint {
  batch: number;
  /** MTIME on the model group, s. */
  mtime: number;
  /** ATIME on the attention group, s. */
  atime: number;
  /** Bytes on the wire per step: (2 + 2/G)·e·d·B·L. */
  bytes: number;
  /** Lamina's minimum bandwidth for the whole step, bytes/s. */
  bandwidth: number;
  /** The same per model device (each sends its share), bytes/s. */
  bandwidthPerModelDevice: number;
}

/** Lamina Fig. 4: minimum network bandwidth vs batch for a (model group, attention group) pair. */
export function bandwidthCurve(
  m: SimModel,
  modelAcc: Accelerator,
  tp: number,
  attAcc: Accelerator,
  attDevices: number,
  context: number,
  alpha: number,
  batches: readonly number[],
  eff: Efficiency,
): BandwidthPoint[] {
  const na: NonAttentionTime = { compute: 0, memory: 0, comm: 0, overhead: 0, total: 0 };
  return batches.map((batch) => {
    const mtime = nonAttentionTime(m, modelAcc, tp, batch, eff, na).total;
    const atime = attentionTime(m, attAcc, attDevices, batch * context, eff);
    const bandwidth = minimumBandwidth(m, batch, alpha, mtime, atime);
    return {
      batch,
      mtime,
      atime,
      bytes: transferBytesPerStep(m, batch),
      bandwidth,
      bandwidthPerModelDevice: bandwidth / tp,
    };
  });
}
