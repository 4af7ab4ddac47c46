import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { loadModel } from "../../src/model/load.js";
import { runToCompletion } from "../helpers/engine-driver.js";
import { familiesEqualColocated } from "../helpers/model-worker-families.js";
import { colocated, requests, storiesDir, withModelWorkers } from "../helpers/model-workers.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-model-worker-families-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("model workers: every model family", () => familiesEqualColocated("shm", tmp));

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
