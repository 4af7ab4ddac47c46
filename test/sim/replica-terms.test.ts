import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { predictEngineRun } from "../../src/sim/predict-engine.js";
import { parseDeviceProfile } from "../../src/sim/profile.js";
import { AttentionWorkersCost, ColocatedCost, PdCost } from "../../src/sim/replica/placement-cost.js";
import { profileForModel, sideRates, stallFactor } from "../../src/sim/replica/rates.js";
import { type BatchLoad, HANDOFF_BYTES_PER_ELEMENT, SideCost } from "../../src/sim/replica/step-cost.js";
import { PD_BENCH_MODEL, TWO_CORE_PROFILE } from "./engine-fixtures.js";

// The model terms the calibration measures besides kernel rates: host stall per thread count,
// the prefill rate at a model's own widths, the message latency of PD's per-layer exchange, and
// the prefill instance's KV handoff after each of its layers.
const PROFILE = TWO_CORE_PROFILE;
const MODEL = PD_BENCH_MODEL;
const DECODE = Array.from({ length: 16 }, (_, i) => ({
  arrival: 0,
  prompt: 64 + i,
  output: 30,
  prefilled: true,
}));
const SHAPE = { maxRunning: 16, maxTokensPerStep: 512, kvBlocks: 4096, blockSize: 16, maxContext: 640 };

describe("replica model terms measured by the calibration", () => {
  it("host stall: the factor of the side's thread count, else the nearest count below, else 1", () => {
    const p = {
      ...PROFILE,
      stall: [
        { threads: 1, factor: 1.25 },
        { threads: 2, factor: 1.1 },
      ],
    };
    assert.equal(stallFactor(PROFILE, 2), 1);
    assert.equal(stallFactor(p, 1), 1.25);
    assert.equal(stallFactor(p, 2), 1.1);
    assert.equal(stallFactor(p, 4), 1.1);
    assert.equal(stallFactor({ ...PROFILE, stall: [{ threads: 2, factor: 1.1 }] }, 1), 1);
    assert.throws(() => parseDeviceProfile({ ...PROFILE, stall: [{ threads: 1, factor: 0.9 }] }), /stall/);
  });

  it("host stall divides every rate of a side and stretches a colocated run by its factor", () => {
    const p = { ...PROFILE, stall: [{ threads: 2, factor: 1.25 }] };
    const a = sideRates(PROFILE, 2);
    const b = sideRates(p, 2);
    for (const k of ["peakFlops", "prefillFlops", "weightBandwidth", "attentionBandwidth"] as const)
      assert.ok(Math.abs(b[k] * 1.25 - a[k]) < 1e-6 * a[k], k);
    assert.equal(b.halfBatch, a.halfBatch);
    const place = { kind: "colocated", threads: 2 } as const;
    const free = predictEngineRun(PROFILE, MODEL, DECODE, SHAPE, place);
    const stalled = predictEngineRun(p, MODEL, DECODE, SHAPE, place);
    // Kernels and fixed costs alike: the whole step takes 1.25× (same schedule, no arrivals).
    assert.equal(stalled.steps, free.steps);
    assert.ok(Math.abs(stalled.seconds / free.seconds - 1.25) < 1e-9, `${stalled.seconds / free.seconds}`);
  });

  it("rates measured at the model's widths replace the profile's for that model only", () => {
    const own = { hidden: 512, intermediate: 1376, threads: 1, prefillFlops: 3e10 };
    const p = { ...PROFILE, modelShapes: [own] };
    assert.deepEqual(profileForModel(p, MODEL).prefill, { threads: 1, flops: 3e10 });
    assert.equal(profileForModel(p, { ...MODEL, hidden: 768 }), p);
    // GEMM fit and weight rate: for the sides of the thread count they were measured with.
    const gemm = { peakFlops: 2e10, halfBatch: 8 };
    const q = profileForModel({ ...PROFILE, modelShapes: [{ ...own, gemm, weightBandwidth: 6e9 }] }, MODEL);
    assert.deepEqual(q.split!.gemm, gemm);
    assert.equal(q.split!.weightBandwidth, 6e9);
    assert.deepEqual(q.gemm, PROFILE.gemm, "the 2-thread rates stay");
    assert.equal(sideRates(q, 1).weightBandwidth, 6e9);
    const prompt = [{ arrival: 0, prompt: 500, output: 1 }];
    const place = { kind: "colocated", threads: 1 } as const;
    const fast = predictEngineRun(PROFILE, MODEL, prompt, SHAPE, place);
    const slow = predictEngineRun(p, MODEL, prompt, SHAPE, place);
    assert.ok(slow.seconds > 1.8 * fast.seconds, `${slow.seconds} vs ${fast.seconds}`);
  });

  it("PD's per-layer exchange to a prefill instance pays the message latency, not the data plane's", () => {
    const side = new SideCost(MODEL, sideRates(PROFILE, 1));
    const o = { layerS: 0, tokenS: 0, latencyS: 0, linkBytesPerS: 5e9 };
    const load: BatchLoad = {
      seqs: 4,
      decodeRows: 4,
      ownDecodeRows: 0,
      ownDecodeCtx: 0,
      ownPrefillTokens: 0,
      ownPrefillWork: 0,
      remote: [{ decodeRows: 4, decodeCtx: 4 * 200, prefillTokens: 0, prefillWork: 0, streamedTokens: 0 }],
    };
    const quick = new PdCost(side, side, side, { ...o, messageLatencyS: 0 }).step(load);
    const slow = new PdCost(side, side, side, { ...o, messageLatencyS: 1e-4 }).step(load);
    // One round trip per layer on the decode instance's critical path.
    assert.ok(Math.abs(slow - quick - MODEL.layers * 2e-4) < 1e-9, `${slow - quick}`);
    const p = { ...PROFILE, transport: { ...PROFILE.transport, messageLatencyS: 1e-4 } };
    const pd = {
      prefillInstances: 1,
      decodeThreads: 1,
      prefillThreads: 1,
      executorThreads: 1,
      prefillKvBlocks: 384,
    };
    const trace = Array.from({ length: 8 }, (_, i) => ({ arrival: i * 0.1, prompt: 200, output: 20 }));
    const a = predictEngineRun(
      PROFILE,
      MODEL,
      trace,
      { ...SHAPE, kvBlocks: 128 },
      { kind: "adrenaline", ...pd },
    );
    const b = predictEngineRun(p, MODEL, trace, { ...SHAPE, kvBlocks: 128 }, { kind: "adrenaline", ...pd });
    assert.ok(b.offload!.maxRatioSeen > 0, "some requests are offloaded");
    assert.ok(b.tpotMeanS > a.tpotMeanS, `${b.tpotMeanS} vs ${a.tpotMeanS}`);
  });

  it("PD's prefill instance pays the measured KV handoff after each layer, in series with its prefill", () => {
    const side = new SideCost(MODEL, sideRates(PROFILE, 1));
    const o = { layerS: 0, tokenS: 0, latencyS: 0, messageLatencyS: 0, linkBytesPerS: 5e9 };
    const prompt = (streamedTokens: number, decodeRows = 0): BatchLoad => ({
      seqs: 1 + decodeRows,
      decodeRows,
      ownDecodeRows: decodeRows,
      ownDecodeCtx: decodeRows * 300,
      ownPrefillTokens: 0,
      ownPrefillWork: 0,
      remote: [{ decodeRows: 0, decodeCtx: 0, prefillTokens: 500, prefillWork: 500 * 500, streamedTokens }],
    });
    const compute = side.prefill(500, 500 * 500);
    const handoff = { layerS: 1e-4, bytesPerS: 2e9 };
    const measured = new PdCost(side, side, side, { ...o, kvHandoff: handoff });
    // Kept on the prefill instance (Adrenaline's offloaded prompt): only the yield after each layer.
    const kept = measured.step(prompt(0));
    assert.ok(Math.abs(kept - compute - MODEL.layers * 1e-4) < 1e-12, `${kept - compute}`);
    // Handed back: every layer's K and V rows, as sent (f32), at the measured rate.
    const bytes = 500 * 2 * MODEL.layers * MODEL.kvHeads * MODEL.headDim * HANDOFF_BYTES_PER_ELEMENT;
    const streamed = measured.step(prompt(500));
    assert.ok(Math.abs(streamed - kept - bytes / 2e9) < 1e-12, `${streamed - kept} vs ${bytes / 2e9}`);
    // Without the measurement: the KV's (f16) bytes at the link's bandwidth, a different charge.
    const linkOnly = new PdCost(side, side, side, o);
    const kvBytes = 500 * 2 * MODEL.layers * MODEL.kvHeads * MODEL.headDim * MODEL.bytesPerElement;
    assert.ok(Math.abs(linkOnly.step(prompt(500)) - compute - kvBytes / 5e9) < 1e-12);
    // The decode instance's own rows run beside the prefill (the runtime sends the chunks first):
    // shorter than the prefill, they add nothing to the step.
    assert.equal(measured.step(prompt(500, 4)), streamed);
    // Through the profile: a slower handoff delays PD's first tokens.
    const pd = {
      kind: "pd",
      prefillInstances: 1,
      decodeThreads: 1,
      prefillThreads: 1,
      executorThreads: 1,
      prefillKvBlocks: 384,
    } as const;
    const trace = Array.from({ length: 8 }, (_, i) => ({ arrival: i * 0.1, prompt: 400, output: 20 }));
    const at = (bytesPerS: number) =>
      predictEngineRun(
        parseDeviceProfile({
          ...PROFILE,
          transport: { ...PROFILE.transport, kvHandoff: { layerS: 0, bytesPerS } },
        }),
        MODEL,
        trace,
        { ...SHAPE, kvBlocks: 128 },
        pd,
      );
    assert.ok(at(1e8).ttftMeanS > at(1e10).ttftMeanS + 0.05, `${at(1e8).ttftMeanS} vs ${at(1e10).ttftMeanS}`);
  });

  it("decode attention charges each sequence the profile's cost per layer before its bytes, on every placement", () => {
    const seqS = 1e-5;
    const p = { ...PROFILE, attentionSeqS: seqS, split: { ...PROFILE.split!, attentionSeqS: 2 * seqS } };
    assert.equal(sideRates(PROFILE, 2).attentionSeqS, 0, "absent: bytes alone");
    assert.equal(sideRates(p, 2).attentionSeqS, seqS);
    assert.equal(
      sideRates(p, 1).attentionSeqS,
      2 * seqS,
      "the split's, measured on the attention worker's thread",
    );
    assert.equal(
      sideRates({ ...p, split: undefined }, 1).attentionSeqS,
      2 * seqS,
      "one thread of two: twice as long",
    );
    assert.throws(() => parseDeviceProfile({ ...PROFILE, attentionSeqS: -1 }), /attentionSeqS/);
    // Eight sequences over the same 800 keys in all: only the per-sequence term differs from one.
    const load = (rows: number): BatchLoad => ({
      seqs: rows,
      decodeRows: rows,
      ownDecodeRows: rows,
      ownDecodeCtx: 800,
      ownPrefillTokens: 0,
      ownPrefillWork: 0,
      remote: [],
    });
    const o = { layerS: 0, tokenS: 0, latencyS: 0, messageLatencyS: 0, linkBytesPerS: 5e9 };
    const both = (side: SideCost) => new ColocatedCost(side, o).cycle([load(8)]) - side.gemm(8);
    const one = (side: SideCost) => new ColocatedCost(side, o).cycle([load(1)]) - side.gemm(1);
    const colocated = new SideCost(MODEL, sideRates(p, 2));
    const extra = both(colocated) - one(colocated);
    assert.ok(Math.abs(extra - 7 * MODEL.layers * seqS) < 1e-12, `${extra}`);
    // An attention worker's side (depth 1: the chain) and a PD executor's offloaded rows pay it too.
    const worker = new SideCost(MODEL, sideRates(p, 1));
    const split = (rows: number) => new AttentionWorkersCost(1, worker, worker, 1, o).cycle([load(rows)]);
    const w =
      split(8) - split(1) - (worker.gemm(8) - worker.gemm(1)) - MODEL.layers * worker.layerTransfer(7, 5e9);
    assert.ok(Math.abs(w - 7 * MODEL.layers * 2 * seqS) < 1e-12, `${w}`);
    const offloaded = (rows: number): BatchLoad => ({
      ...load(rows),
      ownDecodeRows: 0,
      ownDecodeCtx: 0,
      remote: [{ decodeRows: rows, decodeCtx: 800, prefillTokens: 0, prefillWork: 0, streamedTokens: 0 }],
    });
    const pdAt = (q: typeof p) => {
      const side = new SideCost(MODEL, sideRates(q, 1));
      return new PdCost(side, side, side, o).step(offloaded(8));
    };
    const pd = pdAt(p) - pdAt({ ...p, split: { ...p.split, attentionSeqS: 0 } });
    assert.ok(Math.abs(pd - 8 * MODEL.layers * 2 * seqS) < 1e-12, `${pd}`);
  });
});
