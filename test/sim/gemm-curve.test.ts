import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { matmulParams } from "../../src/sim/cost-model.js";
import { parseDeviceProfile } from "../../src/sim/profile.js";
import { sideRates } from "../../src/sim/replica/rates.js";
import { SideCost } from "../../src/sim/replica/step-cost.js";
import { PD_BENCH_MODEL, TWO_CORE_PROFILE } from "./engine-fixtures.js";

// The replica's GEMM time from the measured pass rates where the profile carries them: exact at
// each measured batch, linear between, never below a batch-1 pass, and the last segment's cost per
// token beyond the last point; without points, the roofline fit as before.
const MODEL = PD_BENCH_MODEL;
const FLOPS_PER_TOKEN = 2 * matmulParams(MODEL);
// A concave curve like the EPYC's: the rate grows with the batch, faster than the roofline allows.
const POINTS = [
  { batch: 1, flops: 5e10 },
  { batch: 8, flops: 2e11 },
  { batch: 32, flops: 4e11 },
];
const withPoints = (points = POINTS, stall = 1) =>
  parseDeviceProfile({
    ...TWO_CORE_PROFILE,
    gemm: { ...TWO_CORE_PROFILE.gemm, points },
    stall: [{ threads: 2, factor: stall }],
  });
const passTime = (p: { batch: number; flops: number }) => (FLOPS_PER_TOKEN * p.batch) / p.flops;

describe("GEMM time from the measured pass rates", () => {
  it("is the measured time at every measured batch", () => {
    const side = new SideCost(MODEL, sideRates(withPoints(), 2));
    for (const p of POINTS) {
      const t = side.gemm(p.batch);
      assert.ok(Math.abs(t / passTime(p) - 1) < 1e-12, `batch ${p.batch}: ${t} vs ${passTime(p)}`);
    }
  });

  it("is linear between points and keeps the last segment's cost per token beyond them", () => {
    const side = new SideCost(MODEL, sideRates(withPoints(), 2));
    const [, b8, b32] = POINTS.map(passTime) as [number, number, number];
    assert.ok(Math.abs(side.gemm(20) - (b8 + (b32 - b8) / 2)) < 1e-12);
    const perToken = (b32 - b8) / 24;
    assert.ok(Math.abs(side.gemm(64) - (b32 + 32 * perToken)) < 1e-12);
    // Monotone in the batch on a monotone curve.
    let last = 0;
    for (let b = 1; b <= 80; b++) {
      const t = side.gemm(b);
      assert.ok(t >= last, `batch ${b}`);
      last = t;
    }
  });

  it("differs from the roofline fit, which the profile without points still uses", () => {
    const roofline = new SideCost(MODEL, sideRates(TWO_CORE_PROFILE, 2));
    const measured = new SideCost(MODEL, sideRates(withPoints(), 2));
    assert.equal(sideRates(TWO_CORE_PROFILE, 2).gemmCurve, undefined);
    assert.notEqual(roofline.gemm(8), measured.gemm(8));
  });

  it("stretches with the host stall and scales with the threads of a side", () => {
    const free = new SideCost(MODEL, sideRates(withPoints(), 2));
    const stalled = new SideCost(MODEL, sideRates(withPoints(POINTS, 1.25), 2));
    assert.ok(Math.abs(stalled.gemm(8) / free.gemm(8) - 1.25) < 1e-12);
    // One thread of a 2-thread profile without a split of 1 thread: half the rates.
    const p = parseDeviceProfile({ ...withPoints(), split: undefined });
    const one = new SideCost(MODEL, sideRates(p, 1));
    assert.ok(Math.abs(one.gemm(8) / free.gemm(8) - 2) < 1e-12);
  });

  it("the profile refuses points out of order or fewer than two", () => {
    assert.throws(() => withPoints([POINTS[1]!, POINTS[0]!]), /batches must increase/);
    assert.throws(() => withPoints([POINTS[0]!]), /points/);
  });
});
