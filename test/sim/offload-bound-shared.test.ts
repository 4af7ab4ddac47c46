import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { offloadBound as runtimeBound, shouldOffload as runtimeShould } from "../../src/pd/offload-policy.js";
import { BlockPool } from "../../src/sim/replica/kv-blocks.js";
import { HybridSpace } from "../../src/sim/replica/kv-space.js";
import { adrenalineBound } from "../../src/sim/setup.js";
import type { Accelerator, SimModel } from "../../src/sim/types.js";
import { offloadBound, shouldOffload } from "../../src/util/offload-bound.js";

/** The PD benchmark's inputs as HybridAttentionService passes them (bench/pd/pd-setup.ts). */
const BENCH = {
  prefillKvBlocks: [384],
  decodeKvBlocks: 128,
  prefillAttentionThreads: [1],
  decodeThreads: 1,
  maxBatch: 16,
  blocksPerRequest: 40,
};

describe("Adrenaline's offload bound is one implementation, runtime and simulator", () => {
  it("pd/offload-policy.ts is the shared function itself", () => {
    assert.equal(runtimeBound, offloadBound);
    assert.equal(runtimeShould, shouldOffload);
  });

  it("the replica's bound equals the runtime's on the benchmark's inputs, and is not 0", () => {
    const space = new HybridSpace(new BlockPool(128, 16), [new BlockPool(384, 16)], {
      mode: "adrenaline",
      offloadRatio: null,
      maxBatch: 16,
      decodeThreads: 1,
      executorThreads: 1,
      blocksPerRequest: 40,
    });
    assert.deepEqual(space.bound(), runtimeBound(BENCH));
    assert.equal(space.bound().bound, 1);
    assert.equal(space.limit(), 1);
  });

  it("the replica offloads request by request as shouldOffload says, never past the bound", () => {
    const space = new HybridSpace(new BlockPool(128, 16), [new BlockPool(384, 16)], {
      mode: "adrenaline",
      offloadRatio: null,
      maxBatch: 16,
      decodeThreads: 1,
      executorThreads: 1,
      blocksPerRequest: 40,
    });
    let kept = 0;
    let offloaded = 0;
    for (let id = 0; id < 6; id++) {
      const expect = runtimeShould(kept, offloaded, 1);
      assert.ok(space.reserve(id, 100));
      assert.equal(space.offloadedTo(id) >= 0, expect, `request ${id}`);
      if (expect) offloaded++;
      else kept++;
    }
    assert.equal(space.maxRatioSeen, 1);
    assert.equal(space.offloaded, 3);
  });

  it("the cluster simulator's bound is the same function over its tokens and bytes/s", () => {
    const m: SimModel = {
      name: "t",
      aliases: [],
      source: "test",
      params: 25e6,
      weightBytes: 50e6,
      layers: 8,
      hidden: 512,
      heads: 8,
      kvHeads: 8,
      headDim: 64,
      intermediate: 1376,
      vocab: 258,
      bytesPerElement: 2,
    };
    const acc: Accelerator = {
      name: "d",
      aliases: [],
      source: "test",
      flops: 7e10,
      memoryBytes: 1e9,
      memoryBandwidth: 1.6e10,
      interChipBandwidth: 0,
      nicBandwidth: 1e9,
      powerW: null,
      pricePerHour: 1,
    };
    const eff = {
      mfuMax: 1,
      mfuHalfBatch: 1,
      tpMfuLossPerDoubling: 0,
      prefillMfu: 1,
      weightMbu: 1,
      attentionMbu: 1,
      layerOverhead: 0,
      allReduceLatency: 0,
      memoryUtilization: 1,
      activationReserve: 0,
    };
    // Decode KV 2,048 tokens, executor 6,144 at the same bandwidth share, 640-token requests, B_max 16.
    const remote = { capacityTokens: 6144, devices: 1, bandwidthShare: 1, acc };
    const got = adrenalineBound(m, acc, 1, 2048, remote, 640, 16, eff);
    assert.deepEqual(
      got,
      runtimeBound({
        prefillKvBlocks: [6144],
        decodeKvBlocks: 2048,
        prefillAttentionThreads: [1.6e10],
        decodeThreads: 1.6e10,
        maxBatch: 16,
        blocksPerRequest: 640,
      }),
    );
    assert.equal(got.bound, 1, "the benchmark's shape: bandwidth-bound at 1, not 0");
  });
});
