import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { placementCost, predictEngineRun } from "../../src/sim/predict-engine.js";
import { slicesPerReplica } from "../../src/util/rotation.js";
import { PD_BENCH_MODEL, TWO_CORE_PROFILE } from "./engine-fixtures.js";

const PROFILE = TWO_CORE_PROFILE;
const MODEL = PD_BENCH_MODEL;
// 24 requests arriving over 6 s, prompts of 300–560 tokens and outputs of 40–127.
const REQUESTS = Array.from({ length: 24 }, (_, i) => ({
  arrival: i * 0.25,
  prompt: 300 + ((i * 131) % 260),
  output: 40 + ((i * 37) % 88),
}));
const SHAPE = { maxRunning: 16, maxTokensPerStep: 512, kvBlocks: 128, blockSize: 16, maxContext: 640 };
const PD = {
  prefillInstances: 1,
  decodeThreads: 1,
  prefillThreads: 1,
  executorThreads: 1,
  prefillKvBlocks: 384,
} as const;

describe("predictEngineRun (the replica of our engine)", () => {
  it("PD with a KV-short decode instance preempts by recompute; ample KV does not", () => {
    const short = predictEngineRun(PROFILE, MODEL, REQUESTS, SHAPE, { kind: "pd", ...PD });
    assert.ok(short.preemptions > 0, `preemptions ${short.preemptions}`);
    const ample = predictEngineRun(
      PROFILE,
      MODEL,
      REQUESTS,
      { ...SHAPE, kvBlocks: 4096 },
      { kind: "pd", ...PD },
    );
    assert.equal(ample.preemptions, 0);
    assert.ok(ample.throughputTokS > short.throughputTokS, "recompute costs PD throughput");
    const tokens = REQUESTS.reduce((s, r) => s + r.output, 0);
    assert.equal(short.outputTokens, tokens);
    assert.equal(ample.outputTokens, tokens);
  });

  it("Adrenaline offloads within the runtime's bound, preempts less and serves faster than PD", () => {
    const pd = predictEngineRun(PROFILE, MODEL, REQUESTS, SHAPE, { kind: "pd", ...PD });
    const ad = predictEngineRun(PROFILE, MODEL, REQUESTS, SHAPE, { kind: "adrenaline", ...PD });
    assert.equal(ad.offload!.bound, 1);
    assert.ok(ad.offload!.maxRatioSeen > 0 && ad.offload!.maxRatioSeen <= 1);
    assert.ok(ad.preemptions < pd.preemptions);
    assert.ok(ad.throughputTokS > pd.throughputTokS);
    assert.ok(ad.ttftMeanS < pd.ttftMeanS);
  });

  it("pipelining attention workers overlaps micro-batches: depth 2 beats depth 1 on a decode phase", () => {
    const decode = Array.from({ length: 32 }, (_, i) => ({
      arrival: 0,
      prompt: 64 + i,
      output: 40,
      prefilled: true,
    }));
    const shape = { ...SHAPE, maxRunning: 32, kvBlocks: 4096, maxContext: 2048 };
    const aw = (depth: number) =>
      predictEngineRun(PROFILE, MODEL, decode, shape, {
        kind: "attention-workers",
        workers: 1,
        pipelineDepth: depth,
        modelThreads: 1,
        attentionThreads: 1,
      });
    const d1 = aw(1);
    const d2 = aw(2);
    assert.equal(d1.outputTokens, 32 * 40);
    assert.ok(d2.throughputTokS > d1.throughputTokS);
    const col = predictEngineRun(PROFILE, MODEL, decode, shape, { kind: "colocated", threads: 2 });
    assert.equal(col.preemptions, 0);
    assert.equal(col.outputTokens, 32 * 40);
  });

  it("model workers: one replica is the engine-thread model side; two at depth 3 share the model work by the rotation", () => {
    const step = (placement: Parameters<typeof placementCost>[2]) =>
      placementCost(PROFILE, MODEL, placement).cycle(
        Array.from({ length: placement.kind === "attention-workers" ? placement.pipelineDepth : 1 }, () => ({
          seqs: 16,
          decodeRows: 16,
          ownDecodeRows: 16,
          ownDecodeCtx: 16 * 64,
          ownPrefillTokens: 0,
          ownPrefillWork: 0,
          remote: [],
        })),
      );
    const aw = { kind: "attention-workers", workers: 1, modelThreads: 1, attentionThreads: 1 } as const;
    // The same step model with one replica, whoever runs it.
    assert.equal(step({ ...aw, pipelineDepth: 2, modelWorkers: 1 }), step({ ...aw, pipelineDepth: 2 }));
    // Two replicas at depth 3: the model side's three micro-batches over two cores. With attention
    // made negligible (many workers) the cycle is the busiest replica's slices of the three
    // micro-batches' work, as util/rotation.ts counts them (not an even half).
    const many = { ...aw, workers: 1000 };
    const one = step({ ...many, pipelineDepth: 3 });
    const two = step({ ...many, pipelineDepth: 3, modelWorkers: 2 });
    const slices = MODEL.layers + 1;
    const share = Math.max(...slicesPerReplica(3, slices, 2)) / (3 * slices);
    assert.ok(Math.abs(two / one - share) < 1e-9, `${two / one} against ${share}`);
    assert.ok(two < one * 0.7, "two replicas pace the cycle faster than one");
  });
});
