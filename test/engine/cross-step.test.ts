import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { LocalAttentionService } from "../../src/attention/local-service.js";
import type { AttentionStep } from "../../src/attention/service.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";

const backend = nativeBackend();

/**
 * In-process attention that answers each layer a turn of the event loop later, as a remote
 * worker would, and records which layer every micro-batch has reached when another one starts.
 */
class DeferredAttention extends LocalAttentionService {
  private readonly layerOf = new Map<AttentionStep, number>();
  /** For each step start (layer 0), the deepest layer another micro-batch was at. */
  readonly othersAtStart: number[] = [];
  /** For each step start, whether the pipeline launched it alone (step.alone). */
  readonly aloneAtStart: boolean[] = [];
  /** Steps started while another micro-batch launched alone was mid-forward (must stay 0). */
  startsBesideAlone = 0;

  constructor(
    model: LoadedModel,
    private readonly layers: number,
  ) {
    const sizes = resolveSizes(model, { blockSize: 4 });
    super(backend, sizes.geometry, sizes.numBlocks);
  }

  override beginLayer(layer: number, step: AttentionStep, q: Float32Array): void {
    if (layer === 0) {
      let deepest = -1;
      for (const [s, l] of this.layerOf) {
        if (s === step) continue;
        deepest = Math.max(deepest, l);
        if (s.alone) this.startsBesideAlone++;
      }
      this.othersAtStart.push(deepest);
      this.aloneAtStart.push(step.alone === true);
    }
    this.layerOf.set(step, layer);
    super.beginLayer(layer, step, q);
  }

  override finishLayer(
    layer: number,
    step: AttentionStep,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
  ): Promise<void> {
    super.finishLayer(layer, step, k, v, out);
    return new Promise((resolve) =>
      setImmediate(() => {
        // Its forward pass is over once the last layer's attention is back.
        if (layer === this.layers - 1) this.layerOf.delete(step);
        resolve();
      }),
    );
  }
}

describe("cross-step staggered pipelining", async () => {
  const model = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
  const prompts = [
    "Once upon a time",
    "The cat sat",
    "Tom had a red ball",
    "One day, a bird",
    "Lily was happy",
  ].map((p) => model.tokenizer.encode(p));
  const requests = (n: number) =>
    prompts.map((p, i) => ({ id: `r${i}`, promptTokenIds: p, params: greedy(n, { ignoreEos: true }) }));

  it("a micro-batch starts its next step while the other is still mid-forward, with the same tokens", async () => {
    const sequential = await runToCompletion(
      buildColocatedEngine(model, backend, { blockSize: 4 }),
      requests(24),
    );
    const attention = new DeferredAttention(model, model.config.numLayers);
    const core = buildColocatedEngine(model, backend, { blockSize: 4, pipelineDepth: 2 }, attention);
    const staggered = await runToCompletion(core, requests(24));
    for (const [id, c] of sequential) assert.deepEqual(staggered.get(id)!.tokens, c.tokens, id);
    // A step-synchronous engine starts micro-batches only together (the other at layer 0 or idle);
    // staggered, one restarts while the other waits on its last layer (about every other start).
    const overlapped = attention.othersAtStart.filter((l) => l >= 1).length;
    assert.ok(
      overlapped >= attention.othersAtStart.length / 3,
      `steps started while the other micro-batch was mid-forward: ${overlapped} of ${attention.othersAtStart.length}`,
    );
    assert.equal(core.inFlight(), 0);
    assert.equal(attention.usage()[0]!.usedBlocks, 0);
  });

  it("a micro-batch is launched alone only when no other is in flight or launched beside it", async () => {
    // Five sequences keep both micro-batches busy; one sequence leaves the second idle.
    for (const [n, all] of [
      [5, false],
      [1, true],
    ] as const) {
      const attention = new DeferredAttention(model, model.config.numLayers);
      const core = buildColocatedEngine(model, backend, { blockSize: 4, pipelineDepth: 2 }, attention);
      const done = await runToCompletion(core, requests(12).slice(0, n));
      assert.equal(done.size, n);
      assert.equal(attention.startsBesideAlone, 0, "no step started beside one launched alone");
      attention.aloneAtStart.forEach((alone, i) => {
        if (alone)
          assert.equal(attention.othersAtStart[i], -1, `start ${i} was alone beside a micro-batch in flight`);
      });
      const alone = attention.aloneAtStart.filter((a) => a).length;
      if (all) assert.equal(alone, attention.aloneAtStart.length, "one sequence: every step alone");
      else
        assert.ok(
          alone < attention.aloneAtStart.length / 2,
          `${alone} of ${attention.aloneAtStart.length} alone`,
        );
    }
  });

  it("an abort of a request in flight waits for its micro-batch, then frees its KV", async () => {
    const attention = new DeferredAttention(model, model.config.numLayers);
    const core = buildColocatedEngine(model, backend, { blockSize: 4, pipelineDepth: 2 }, attention);
    for (const r of requests(40)) core.add(r);
    for (let i = 0; i < 6; i++) await core.runStep();
    assert.equal(core.inFlight(), 1, "one micro-batch stays in flight between steps");
    const events = [];
    for (const id of core.requestIds()) core.abort(id);
    while (core.hasWork) events.push(...(await core.runStep()));
    const aborted = events.filter((e) => e.finishReason === "abort").map((e) => e.requestId);
    assert.deepEqual(aborted.sort(), prompts.map((_, i) => `r${i}`).sort());
    assert.equal(core.inFlight(), 0);
    assert.equal(attention.usage()[0]!.usedBlocks, 0);
  });
});
