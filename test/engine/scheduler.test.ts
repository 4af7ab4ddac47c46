import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { PromptTooLongError, QueueFullError } from "../../src/engine/errors.js";
import { loadModel } from "../../src/model/load.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { NO_OUTPUT_RESERVE } from "../../src/util/output-reserve.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { generateAlone, greedy, runToCompletion } from "../helpers/engine-driver.js";

const backend = nativeBackend();

describe("scheduler: admission, preemption, cancellation, limits", async () => {
  const model = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
  const prompts = [
    "Once upon a time",
    "The cat sat",
    "Tom had a red ball",
    "One day, a bird",
    "Lily was happy",
    "The sun",
  ].map((p) => model.tokenizer.encode(p));

  it("preempts by recompute under KV pressure and still completes every request with the same tokens", async () => {
    const alone: number[][] = [];
    for (const p of prompts) alone.push(await generateAlone(model, backend, p, 40, { blockSize: 4 }));
    // Each request needs about 12 blocks of 4 tokens; 30 blocks hold two or three at a time. With
    // no output reserve, admission fills the cache and growing sequences preempt.
    const core = buildColocatedEngine(model, backend, {
      blockSize: 4,
      kvBlocks: 30,
      maxRunning: 6,
      outputReserve: NO_OUTPUT_RESERVE,
    });
    const res = await runToCompletion(
      core,
      prompts.map((p, i) => ({ id: `r${i}`, promptTokenIds: p, params: greedy(40, { ignoreEos: true }) })),
    );
    assert.ok(
      core.scheduler.preemptions > 0,
      "the cache was too small to hold every request: something was preempted",
    );
    prompts.forEach((_, i) => {
      assert.deepEqual(res.get(`r${i}`)!.tokens, alone[i], `request ${i}`);
    });
    assert.equal(core.attention.usage()[0]!.usedBlocks, 0);
  });

  it("the default output reserve admits fewer at once and preempts nothing on the same workload", async () => {
    const alone: number[][] = [];
    for (const p of prompts) alone.push(await generateAlone(model, backend, p, 40, { blockSize: 4 }));
    const core = buildColocatedEngine(model, backend, { blockSize: 4, kvBlocks: 30, maxRunning: 6 });
    const res = await runToCompletion(
      core,
      prompts.map((p, i) => ({ id: `r${i}`, promptTokenIds: p, params: greedy(40, { ignoreEos: true }) })),
    );
    // Every request's 40 output tokens are reserved when it is admitted (the ratio starts at 1 and
    // 40-odd planned steps lower it by less than a tenth), so no running request runs out of room.
    assert.equal(core.scheduler.preemptions, 0);
    assert.ok(core.scheduler.peakRunning >= 2 && core.scheduler.peakRunning < prompts.length);
    prompts.forEach((_, i) => {
      assert.deepEqual(res.get(`r${i}`)!.tokens, alone[i], `request ${i}`);
    });
    assert.equal(core.attention.usage()[0]!.usedBlocks, 0);
  });

  it("an aborted request frees its KV at the next step", async () => {
    const core = buildColocatedEngine(model, backend, { blockSize: 4 });
    core.add({ id: "a", promptTokenIds: prompts[0]!, params: greedy(50, { ignoreEos: true }) });
    core.add({ id: "b", promptTokenIds: prompts[1]!, params: greedy(50, { ignoreEos: true }) });
    for (let i = 0; i < 5; i++) await core.runStep();
    const before = core.attention.usage()[0]!.usedBlocks;
    core.abort("a");
    const events = await core.runStep();
    const ev = events.find((e) => e.requestId === "a");
    assert.equal(ev?.finishReason, "abort");
    const after = core.attention.usage()[0]!.usedBlocks;
    assert.ok(after < before, `blocks ${before} → ${after}`);
    core.abort("b");
    await core.runStep();
    assert.equal(core.attention.usage()[0]!.usedBlocks, 0);
    assert.equal(core.hasWork, false);
  });

  it("refuses at once beyond the waiting-queue bound, and rejects prompts longer than the context", () => {
    const core = buildColocatedEngine(model, backend, { maxWaiting: 2 });
    core.add({ id: "1", promptTokenIds: prompts[0]!, params: greedy(4) });
    core.add({ id: "2", promptTokenIds: prompts[0]!, params: greedy(4) });
    assert.throws(
      () => core.add({ id: "3", promptTokenIds: prompts[0]!, params: greedy(4) }),
      QueueFullError,
    );
    assert.equal(core.stats().refused, 1);
    const long = new Array(model.config.maxPositionEmbeddings).fill(5);
    assert.throws(() => core.add({ id: "4", promptTokenIds: long, params: greedy(4) }), PromptTooLongError);
  });

  it("a request that cannot fit even in an empty cache fails with an error instead of waiting forever", async () => {
    const core = buildColocatedEngine(model, backend, { blockSize: 4, kvBlocks: 3 });
    const res = await runToCompletion(core, [
      { id: "big", promptTokenIds: new Array(40).fill(300), params: greedy(4) },
    ]);
    assert.equal(res.get("big")!.finishReason, "error");
    assert.match(res.get("big")!.error!, /more KV cache/);
  });

  it("chunked prefill: a long prompt does not stall decoding of a running request", async () => {
    const core = buildColocatedEngine(model, backend, { maxTokensPerStep: 8, maxRunning: 4 });
    core.add({ id: "short", promptTokenIds: prompts[0]!, params: greedy(30, { ignoreEos: true }) });
    await core.runStep();
    await core.runStep();
    core.add({
      id: "long",
      promptTokenIds: new Array(120).fill(0).map((_, i) => 300 + (i % 100)),
      params: greedy(2, { ignoreEos: true }),
    });
    // While the 120-token prompt is prefilled 7 tokens at a time, the short request still decodes every step.
    for (let i = 0; i < 10; i++) {
      const events = await core.runStep();
      assert.ok(
        events.some((e) => e.requestId === "short" && e.tokenIds.length === 1),
        `step ${i}: the running request got a token`,
      );
    }
  });
});
