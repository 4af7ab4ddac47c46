import type { KvGeometry } from "../../src/attention/kv-attention.js";

/**
 * The block-pool tests' small geometry: blocks of 4 tokens, a window of 6, steps of at most 4
 * tokens (so a step reaches back at most 9 keys), 2 query heads on 1 KV head of 8, f32; layer l
 * attends within the window where slidingLayers[l].
 */
export function windowGeometry(slidingLayers: boolean[], maxSeqs: number): KvGeometry {
  return {
    numLayers: slidingLayers.length,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 8,
    blockSize: 4,
    kvDtype: "f32",
    maxContext: 64,
    maxTokens: 4,
    maxSeqs,
    slidingWindow: 6,
    slidingLayers,
  };
}
