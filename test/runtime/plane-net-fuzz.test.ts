// The model plane's frame receiver (plane_net.cpp) under libFuzzer: hostile frames into a model
// worker's copy of the plane, guard zones around it (test/helpers/libfuzzer.ts runs the target).
import { describe } from "node:test";
import { fuzzTarget } from "../helpers/libfuzzer.js";

/**
 * Model-plane frames for the plane_net target to start from (its segment: 4096 bytes): one that
 * writes a range, stores a counter under a guard and rings a doorbell, and one behind its guard.
 */
function planeSeed(): Buffer {
  const frame = (guardVal: number) => {
    const head = Buffer.alloc(32 + 8 + 8);
    for (const [i, v] of [0x4e504c4d, 1, 1, 1, 256, guardVal, 128, 16, 1024, 16, 64, 7].entries())
      head.writeInt32LE(v, 4 * i);
    return Buffer.concat([head, Buffer.alloc(16, 3)]);
  };
  return Buffer.concat([frame(0), frame(-1)]);
}

describe("model plane under libFuzzer", () => {
  fuzzTarget("plane_net", "model-plane frames into a model worker's copy of the plane", planeSeed());
});
