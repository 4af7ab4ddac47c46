import assert from "node:assert/strict";
import path from "node:path";
import { it } from "node:test";
import type { EngineCore } from "../../src/engine/engine-core.js";
import { loadModel } from "../../src/model/load.js";
import { buildEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { greedy, runToCompletion } from "./engine-driver.js";
import { backend, closeCore, colocated } from "./model-workers.js";
import { TINY_VARIANTS, writeTinyModel } from "./tiny-models.js";

/**
 * Every tiny model family on 2 model workers × 1 attention worker at depth 3 gives the colocated
 * greedy tokens, with the model plane over shared memory or over TCP (where each slice's context,
 * Gemma's norms and residuals included, crosses a socket). Declares one test per family.
 */
export function familiesEqualColocated(plane: "shm" | "tcp", tmp: string): void {
  for (const variant of TINY_VARIANTS)
    it(`${variant}: 2 model workers × 1 attention worker, depth 3, model plane over ${plane}, equal colocated`, async () => {
      const tiny = writeTinyModel(path.join(tmp, `${variant}-${plane}`), variant);
      const model = await loadModel(tiny.dir);
      const reqs = [1, 2, 3].map((i) => ({
        id: `t${i}`,
        promptTokenIds: Array.from({ length: 3 + 2 * i }, (_, j) => 3 + ((i * 7 + j * 5) % 40)),
        params: greedy(8, { ignoreEos: true }),
      }));
      const expected = await colocated(model, reqs);
      const o: EngineOptions = {
        modelWorkers: 2,
        attentionWorkers: 1,
        pipelineDepth: 3,
        // Speculative steps too (a tiny model is below the size it is on by default for): more
        // logit rows than sequences cross the plane, against colocated decoding one token a step.
        speculativeTokens: 3,
        ...(plane === "tcp" ? { modelPlane: "tcp", transport: "tcp" } : {}),
      };
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
