import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { GenerateRequest } from "../../src/engine/api.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine, buildPdEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { inProcessPrefill } from "./in-process-prefill.js";

const backend = nativeBackend();
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-pd-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const PROMPTS = [
  "Once upon a time",
  "The little dog",
  "Lily and Ben went to the park and",
  "One day, a girl named Sue found a big red ball in the garden. She",
  "Tom",
  "The sun was",
];

function requests(model: LoadedModel): GenerateRequest[] {
  return PROMPTS.map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: model.tokenizer.encode(p),
    params: greedy(20 + 3 * i, { ignoreEos: true }),
  }));
}

// Small steps, so long prompts are prefilled in several chunks on the prefill instance.
const SIZES: EngineOptions = { maxTokensPerStep: 16, maxRunning: 8, blockSize: 4 };

for (const source of ["stories260K", "tiny llama-gqa"] as const) {
  describe(`${source}: pd and adrenaline give the colocated greedy tokens`, async () => {
    const model =
      source === "stories260K"
        ? await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"))
        : await loadModel(writeTinyModel(path.join(tmp, "gqa"), "llama-gqa").dir);
    const colocated = await runToCompletion(buildColocatedEngine(model, backend, SIZES), requests(model));
    const expected = [...colocated.values()].map((c) => c.tokens);

    const cases: { name: string; o: EngineOptions; instances: number }[] = [
      { name: "pd, 1 prefill instance", o: { mode: "pd" }, instances: 1 },
      { name: "pd, 2 prefill instances, depth 2", o: { mode: "pd", pipelineDepth: 2 }, instances: 2 },
      { name: "adrenaline, ratio 1", o: { mode: "adrenaline", offloadRatio: 1 }, instances: 1 },
      {
        name: "adrenaline, ratio 3, 2 instances, depth 2",
        o: { mode: "adrenaline", offloadRatio: 3, pipelineDepth: 2 },
        instances: 2,
      },
    ];
    for (const c of cases) {
      for (const transport of ["shm", "tcp"] as const)
        it(`${c.name}, ${transport}`, async () => {
          const { opener, servers, close } = inProcessPrefill(model, backend, 16, 64 << 20, transport);
          const { core, attention } = await buildPdEngine(
            model,
            backend,
            { ...SIZES, ...c.o, prefillInstances: c.instances },
            { log: () => {}, prefillOpener: opener },
          );
          try {
            const res = await runToCompletion(core, requests(model));
            assert.deepEqual(
              [...res.values()].map((r) => r.tokens),
              expected,
            );
            // Every prompt went through a prefill instance; pd hands all KV back, adrenaline keeps some.
            const prefilled = servers.reduce((a, s) => a + s.prefillTokens, 0);
            const promptTokens = requests(model).reduce((a, r) => a + r.promptTokenIds.length, 0);
            assert.equal(prefilled, promptTokens);
            if (c.o.mode === "adrenaline") assert.ok(attention.decisions > 0 && attention.maxRatioSeen > 0);
            else assert.equal(attention.maxRatioSeen, 0);
            for (const u of attention.usage())
              assert.equal(u.usedBlocks, 0, `no KV block left on ${u.worker}`);
            // Asked over the connection, so every RELEASE sent before has been applied.
            for (const x of attention.instances) {
              const [w] = await x.remote.workerStats();
              assert.equal(w?.usedBlocks, 0, `the executor on ${x.link.name} agrees`);
            }
          } finally {
            await attention.close();
            await close();
          }
        });
    }
  });
}
