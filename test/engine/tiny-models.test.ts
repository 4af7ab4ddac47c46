import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { buildEngineCore } from "../../src/engine/build-core.js";
import { loadModel } from "../../src/model/load.js";
import { engineBackends } from "../helpers/backends.js";
import { generateAlone, greedy, logitsAllPositions, runToCompletion } from "../helpers/engine-driver.js";
import { referenceLogits } from "../helpers/reference-forward.js";
import { TINY_VARIANTS, writeTinyModel } from "../helpers/tiny-models.js";

const root = mkdtempSync(path.join(tmpdir(), "lamina-tiny-"));
after(() => rmSync(root, { recursive: true, force: true }));

const prompt = [256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33];

for (const { name: backendName, backend } of engineBackends()) {
  for (const variant of TINY_VARIANTS) {
    describe(`tiny ${variant} model (${backendName} kernels)`, async () => {
      const tiny = writeTinyModel(path.join(root, `${variant}-${backendName}`), variant);
      const model = await loadModel(tiny.dir);
      const lowPrecision = [...model.weights.values()].some((t) => t.dtype !== "f32");
      const tol = lowPrecision ? 2e-2 : 1e-4;

      it(`logits match a float64 reference within ${tol} relative`, async () => {
        const ref = referenceLogits(model.config, model.weights, prompt);
        const got = await logitsAllPositions(model, backend, prompt, 4);
        for (let pos = 0; pos < prompt.length; pos++) {
          const r = ref[pos]!;
          const scale = Math.max(...r.map(Math.abs), 1e-6);
          let worst = 0;
          for (let i = 0; i < r.length; i++) worst = Math.max(worst, Math.abs(got[pos]![i]! - r[i]!));
          assert.ok(
            worst <= tol * scale,
            `position ${pos}: max |diff| ${worst.toExponential(3)} > ${tol} × ${scale.toFixed(3)}`,
          );
        }
      });

      it("batched generation gives the same tokens as generating each alone", async () => {
        const prompts = [prompt, prompt.slice(0, 5), [256, 84, 104, 101, 32, 101, 110, 100]];
        const alone: number[][] = [];
        for (const p of prompts) alone.push(await generateAlone(model, backend, p, 10, { blockSize: 4 }));
        // A small token budget forces chunked prefill to interleave with decoding.
        const core = buildEngineCore(model, backend, { blockSize: 4, maxTokensPerStep: 6, maxRunning: 4 });
        const res = await runToCompletion(
          core,
          prompts.map((p, i) => ({
            id: `r${i}`,
            promptTokenIds: p,
            params: greedy(10, { ignoreEos: true }),
          })),
        );
        for (let i = 0; i < prompts.length; i++)
          assert.deepEqual(res.get(`r${i}`)!.tokens, alone[i], `request ${i}`);
        assert.equal(core.attention.usage()[0]!.usedBlocks, 0, "every KV block is freed");
      });
    });
  }
}
