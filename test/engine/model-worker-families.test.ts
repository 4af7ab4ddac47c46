import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import type { EngineCore } from "../../src/engine/engine-core.js";
import { loadModel } from "../../src/model/load.js";
import { buildEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";
import {
  backend,
  closeCore,
  colocated,
  requests,
  storiesDir,
  withModelWorkers,
} from "../helpers/model-workers.js";
import { TINY_VARIANTS, writeTinyModel } from "../helpers/tiny-models.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-model-worker-families-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("model workers: every model family", async () => {
  for (const variant of TINY_VARIANTS) {
    it(`${variant}: 2 model workers × 1 attention worker, depth 3, equal colocated`, async () => {
      const tiny = writeTinyModel(path.join(tmp, variant), variant);
      const model = await loadModel(tiny.dir);
      const reqs = [1, 2, 3].map((i) => ({
        id: `t${i}`,
        promptTokenIds: Array.from({ length: 3 + 2 * i }, (_, j) => 3 + ((i * 7 + j * 5) % 40)),
        params: greedy(8, { ignoreEos: true }),
      }));
      const expected = await colocated(model, reqs);
      const o: EngineOptions = { modelWorkers: 2, attentionWorkers: 1, pipelineDepth: 3 };
      // Every family, Gemma's per-layer windows, scales and soft-caps included, runs here: model
      // workers need the native data plane, which carries them.
      const built: EngineCore = await buildEngine(model, backend, {
        model: tiny.dir,
        maxTokensPerStep: 16,
        ...o,
      });
      try {
        const res = await runToCompletion(built, reqs);
        assert.deepEqual(
          [...res.values()].map((c) => c.tokens),
          expected,
        );
      } finally {
        await closeCore(built);
      }
    });
  }
});

describe("model workers: quantized GGUF weights", () => {
  it("stories260K at Q8_0 (our export): 2 model workers × 1 attention worker give the colocated tokens", async () => {
    const file = path.join(tmp, "stories260K-q8_0.gguf");
    modelToGguf(await loadModel(storiesDir), file, { quantize: "q8_0" });
    const model = await loadModel(file);
    assert.ok(
      [...model.weights.values()].some((t) => t.dtype === "q8_0"),
      "the weights stay quantized",
    );
    const reqs = requests(model, 4, 16);
    const expected = await colocated(model, reqs);
    await withModelWorkers(
      model,
      file,
      { modelWorkers: 2, attentionWorkers: 1, pipelineDepth: 3 },
      async (core) => {
        const res = await runToCompletion(core, reqs);
        assert.deepEqual(
          [...res.values()].map((c) => c.tokens),
          expected,
        );
      },
    );
  });
});
