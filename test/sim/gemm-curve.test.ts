import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { matmulParams } from "../../src/sim/cost-model.js";
import { parseDeviceProfile } from "../../src/sim/profile.js";
import { profileForModel, sideRates } from "../../src/sim/replica/rates.js";
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

describe("prompt chunks after a cached context", () => {
  // The measured chunk: 1024 tokens from an empty context, at the profile's prefill rate.
  const n = 1024;
  // Attention at 200 GB/s: a seventh of the measured chunk's time goes to its KV reads.
  const chunkProfile = (chunkTokens?: number, attentionBandwidth = 2e11) =>
    parseDeviceProfile({
      ...TWO_CORE_PROFILE,
      attentionBandwidth,
      prefill: { threads: 2, flops: 2e11, ...(chunkTokens ? { chunkTokens } : {}) },
    });
  const q = MODEL.heads * MODEL.headDim;
  const attnFlops = (work: number) => 2 * MODEL.layers * q * work;
  const kvBytes = 2 * MODEL.layers * MODEL.kvHeads * MODEL.headDim * MODEL.bytesPerElement;

  it("takes the measured time for the measured chunk, its attention and GEMMs apart", () => {
    const side = new SideCost(MODEL, sideRates(chunkProfile(n), 2));
    const measured = (FLOPS_PER_TOKEN * n + attnFlops(n * n)) / 2e11;
    assert.ok(Math.abs(side.prefill(n, n * n) / measured - 1) < 1e-9);
  });

  it("charges the context's KV reads, query by query, at the decode attention's rate", () => {
    const rates = sideRates(chunkProfile(n), 2);
    const side = new SideCost(MODEL, rates);
    // 128 new tokens after 896 cached: work 2·128·(896 + 64).
    const work = 2 * 128 * (896 + 64);
    const alone = side.prefill(128, 128 * 128);
    const after = side.prefill(128, work);
    const reads = ((work - 128 * 128) / 2) * kvBytes;
    assert.ok(Math.abs((after - alone) / (reads / rates.attentionBandwidth) - 1) < 1e-9);
    // Without the chunk's size: one rate for GEMMs and attention, as before.
    const single = (FLOPS_PER_TOKEN * 128 + attnFlops(work)) / 2e11;
    const flat = new SideCost(MODEL, sideRates(chunkProfile(), 2));
    assert.ok(Math.abs(flat.prefill(128, work) / single - 1) < 1e-9);
    // Reads that would take longer than the measured chunk did (20 GB/s): the rates do not fit, one rate.
    const slow = new SideCost(MODEL, sideRates(chunkProfile(n, 2e10), 2));
    assert.ok(Math.abs(slow.prefill(128, work) / single - 1) < 1e-9);
  });
});

describe("the prompt-chunk rate at each side's thread count", () => {
  const profile = parseDeviceProfile({
    ...TWO_CORE_PROFILE,
    stall: [],
    prefill: { threads: 1, flops: 2e11, chunkTokens: 512, contextBandwidth: 3e10 },
    prefillWhole: { threads: 2, flops: 3.4e11, chunkTokens: 512, contextBandwidth: 5e10 },
    modelShapes: [{ hidden: 1, intermediate: 1, threads: 1, prefillFlops: 1e11 }],
  });

  it("takes the rate measured at that thread count, else scales one thread's", () => {
    const two = sideRates(profile, 2);
    assert.equal(two.prefillFlops, 3.4e11, "two threads prefill below twice one thread's rate");
    assert.equal(two.prefillContextBandwidth, 5e10);
    assert.equal(sideRates(profile, 1).prefillFlops, 2e11);
    const { prefillWhole: _, ...onlyOne } = profile;
    assert.equal(sideRates(onlyOne, 2).prefillFlops, 4e11, "without it: one thread's, scaled");
  });

  it("is the profile's own model's: a model of other widths takes its own entry", () => {
    const other = profileForModel(profile, { ...MODEL, hidden: 1, intermediate: 1 });
    assert.equal(other.prefillWhole, undefined);
    assert.equal(sideRates(other, 2).prefillFlops, 2e11);
  });
});
