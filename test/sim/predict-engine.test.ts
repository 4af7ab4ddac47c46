import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { predictEngineRun } from "../../src/sim/predict-engine.js";
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
});
