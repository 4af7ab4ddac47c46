import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadCatalog, resolveModel } from "../../src/sim/catalog.js";
import {
  type DeviceProfile,
  parseDeviceProfile,
  predictEngineThroughput,
  profileToDevice,
} from "../../src/sim/profile.js";
import { syntheticTrace } from "../../src/sim/trace.js";
import { sharedDataPath } from "../../src/util/shared-data.js";

const PROFILE: DeviceProfile = {
  version: 1,
  name: "dev-2core",
  memoryBytes: 24e9,
  gemm: { peakFlops: 1.7e11, halfBatch: 6 },
  weightBandwidth: 2.3e10,
  attentionBandwidth: 2.6e10,
  layerOverheadS: 2e-5,
  transport: { bandwidth: 5e9, latencyS: 2e-5 },
};

describe("sim device profile", () => {
  it("validates the JSON and names the missing field", () => {
    assert.deepEqual(parseDeviceProfile(JSON.parse(JSON.stringify(PROFILE))), PROFILE);
    assert.throws(
      () => parseDeviceProfile({ ...PROFILE, gemm: undefined }, "p.json"),
      /p\.json: [\s\S]*gemm/,
    );
    assert.throws(() => parseDeviceProfile({ ...PROFILE, version: 2 }), /version/);
  });

  it("measured rates become the device's peaks with unit efficiencies", () => {
    const { acc, eff } = profileToDevice(PROFILE);
    assert.equal(acc.flops, 1.7e11);
    assert.equal(acc.memoryBandwidth, 2.3e10);
    assert.equal(eff.mfuMax, 1);
    assert.ok(Math.abs(eff.attentionMbu - 2.6 / 2.3) < 1e-12);
  });

  it("predicts decode throughput of the demo model, colocated and disaggregated", () => {
    const catalog = loadCatalog();
    const model = resolveModel(catalog, sharedDataPath("models", "stories260K", "hf", "config.json"));
    const trace = syntheticTrace({
      requests: 64,
      rate: Number.POSITIVE_INFINITY,
      meanPrompt: 64,
      meanOutput: 64,
      sigma: 0,
      seed: 1,
    });
    const colocated = predictEngineThroughput(PROFILE, model, trace, { mode: "colocated", maxBatch: 16 });
    const disagg = predictEngineThroughput(PROFILE, model, trace, {
      mode: "disaggregated",
      attentionWorkers: 2,
      maxBatch: 16,
    });
    assert.equal(colocated.completed, 64);
    assert.equal(disagg.completed, 64);
    assert.equal(colocated.outputTokens, 64 * 64);
    assert.equal(colocated.avgBatch, 16);
    // A 260K-parameter model is all overhead: 5 layers × 20 µs per step bounds the step from below.
    assert.ok(colocated.tbtMs.mean >= 0.1, `${colocated.tbtMs.mean}`);
    assert.ok(colocated.throughputTokS > 0 && disagg.throughputTokS > 0);
    assert.ok(colocated.throughputTokS <= 16 / 1e-4);
  });
});
