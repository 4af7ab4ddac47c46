// A PD step with both the decode instance's own rows and prompt chunks for a prefill instance runs
// them side by side: the chunks are sent before the decode instance computes its rows, so the
// prefill instance is not left idle for the length of the local pass (the simulator's PdCost
// charges the longer of the two, not their sum).
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import type { AttentionStep } from "../../src/attention/service.js";
import { loadModel } from "../../src/model/load.js";
import type { PrefillBatch } from "../../src/pd/prefill-link.js";
import { buildPdEngine } from "../../src/placement/build.js";
import type { ModelStep } from "../../src/runtime/step.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";
import { inProcessPrefill } from "./in-process-prefill.js";

describe("PD step: prompt chunks and the decode instance's own rows", () => {
  it("sends the chunks to the prefill instance before computing its own rows", async () => {
    const model = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
    const backend = nativeBackend();
    const { opener, close } = inProcessPrefill(model, backend, 16);
    const { core, attention } = await buildPdEngine(
      model,
      backend,
      { mode: "pd", maxTokensPerStep: 16, maxRunning: 4, blockSize: 4 },
      { log: () => {}, prefillOpener: opener },
    );
    // Per step: what happened first, the PREFILL sent or the local pass's first layer.
    const order: string[][] = [];
    const executor = core.executor;
    const forward = executor.forward.bind(executor);
    executor.forward = (step: ModelStep, att) => {
      order.push([]);
      return forward(step, att);
    };
    const link = attention.instances[0]!.link;
    const prefill = link.prefill.bind(link);
    link.prefill = (b: PrefillBatch, vocab: number) => {
      order.at(-1)!.push("prefill");
      return prefill(b, vocab);
    };
    const beginLayer = attention.beginLayer.bind(attention);
    attention.beginLayer = (layer: number, step: AttentionStep, q: Float32Array) => {
      if (layer === 0) order.at(-1)!.push("local");
      beginLayer(layer, step, q);
    };
    try {
      // "Tom" is prefilled in the first step and decodes while the long prompt's second chunk
      // (16 tokens a step) is still on the prefill instance.
      const prompts = ["Tom", "One day, a girl named Sue found a big red ball in the garden. She"];
      await runToCompletion(
        core,
        prompts.map((p, i) => ({
          id: `r${i}`,
          promptTokenIds: model.tokenizer.encode(p),
          params: greedy(8, { ignoreEos: true }),
        })),
      );
      const mixed = order.filter((o) => o.length === 2);
      assert.ok(mixed.length >= 2, `steps with both kinds of work: ${JSON.stringify(order)}`);
      for (const o of mixed) assert.deepEqual(o, ["prefill", "local"]);
    } finally {
      await attention.close();
      await close();
    }
  });
});
