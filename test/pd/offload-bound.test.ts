import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { GenerateRequest } from "../../src/engine/api.js";
import { loadModel } from "../../src/model/load.js";
import { offloadBound, shouldOffload } from "../../src/pd/offload-policy.js";
import { buildColocatedEngine, buildPdEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { inProcessPrefill } from "./in-process-prefill.js";

describe("offload bound", () => {
  it("is min(capacity, bandwidth, compute headroom) as in Adrenaline", () => {
    const b = offloadBound({
      prefillKvBlocks: [300, 300],
      decodeKvBlocks: 200,
      prefillAttentionThreads: [1, 1],
      decodeThreads: 2,
      maxBatch: 64,
      blocksPerRequest: 10,
    });
    assert.equal(b.capacity, 3);
    assert.equal(b.bandwidth, 1);
    assert.equal(b.memory, 1);
    assert.equal(b.localBatch, 20);
    assert.equal(b.compute, (64 - 20) / 20);
    assert.equal(b.bound, 1);
  });

  it("is the compute headroom when that is smaller, and 0 when local KV already fits the whole batch", () => {
    const tight = offloadBound({
      prefillKvBlocks: [1000],
      decodeKvBlocks: 400,
      prefillAttentionThreads: [4],
      decodeThreads: 1,
      maxBatch: 50,
      blocksPerRequest: 10,
    });
    assert.equal(tight.localBatch, 40);
    assert.equal(tight.bound, 0.25);
    const roomy = offloadBound({
      prefillKvBlocks: [1000],
      decodeKvBlocks: 10_000,
      prefillAttentionThreads: [4],
      decodeThreads: 1,
      maxBatch: 50,
      blocksPerRequest: 10,
    });
    assert.equal(roomy.compute, 0);
    assert.equal(roomy.bound, 0);
  });

  it("offloads a request only while N/M stays within the limit", () => {
    assert.equal(shouldOffload(0, 0, 1), false, "the first request is kept");
    assert.equal(shouldOffload(1, 0, 1), true);
    assert.equal(shouldOffload(1, 1, 1), false);
    assert.equal(shouldOffload(4, 1, 0.5), true);
    assert.equal(shouldOffload(4, 2, 0.5), false);
    assert.equal(shouldOffload(10, 0, 0), false, "a zero limit never offloads");
  });
});

describe("load-aware offloading in the engine", async () => {
  const tmp = mkdtempSync(path.join(tmpdir(), "lamina-pd-bound-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const backend = nativeBackend();
  const model = await loadModel(writeTinyModel(path.join(tmp, "mha"), "llama-mha").dir);
  const reqs: GenerateRequest[] = Array.from({ length: 12 }, (_, i) => ({
    id: `r${i}`,
    promptTokenIds: model.tokenizer.encode(`request ${i}: ${"abc".repeat(1 + (i % 4))}`),
    params: greedy(24, { ignoreEos: true }),
  }));
  // A decode instance whose KV holds 3 requests at the maximum length while it may batch 8: the
  // bound allows offloading, and memory (not compute) limits the local batch.
  const SIZES: EngineOptions = {
    maxModelLen: 64,
    blockSize: 4,
    kvBlocks: 48,
    maxRunning: 8,
    maxTokensPerStep: 64,
  };

  it("never lets N/M pass the bound, offloads up to it, and gives the colocated tokens", async () => {
    const expected = [...(await runToCompletion(buildColocatedEngine(model, backend, SIZES), reqs)).values()];
    const { opener } = inProcessPrefill(model, backend, 64);
    const { core, attention } = await buildPdEngine(
      model,
      backend,
      { ...SIZES, mode: "adrenaline", prefillInstances: 1, prefillThreads: 1, threads: 1 },
      { log: () => {}, prefillOpener: opener },
    );
    try {
      const bound = attention.bound();
      assert.equal(bound.localBatch, 3);
      assert.ok(bound.bound > 0, `the bound allows offloading (${JSON.stringify(bound)})`);
      for (const r of reqs) core.add(r);
      const tokens = new Map<string, number[]>(reqs.map((r) => [r.id, []]));
      let offloadedMax = 0;
      while (core.hasWork) {
        for (const ev of await core.runStep()) tokens.get(ev.requestId)!.push(...ev.tokenIds);
        const s = core.stats().offload!;
        assert.equal(s.limit, s.bound, "no fixed ratio: decisions follow the bound");
        offloadedMax = Math.max(offloadedMax, s.offloaded);
      }
      // N/M right after every offloading decision (kept requests finishing later may raise N/M
      // until they are replaced; new requests are then kept).
      assert.ok(
        attention.maxRatioSeen > 0 && attention.maxRatioSeen <= bound.bound + 1e-9,
        `N/M at decisions ${attention.maxRatioSeen} within the bound ${bound.bound}`,
      );
      assert.ok(offloadedMax >= 2, "several requests were offloaded at once");
      assert.deepEqual(
        [...tokens.values()],
        expected.map((e) => e.tokens),
      );
    } finally {
      await attention.close();
    }
  });
});
