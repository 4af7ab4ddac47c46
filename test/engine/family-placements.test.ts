// The newer families (Qwen3, Phi-3 with and without LongRoPE, Mixtral, Qwen3-MoE, Gemma 2 and 3) through the same
// slices on every kind of placement: attention workers (head and request partitioning,
// pipelining, shm and TCP), PD and Adrenaline must all give the colocated engine's greedy tokens
// and leave no KV block behind.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { GenerateRequest } from "../../src/engine/api.js";
import { loadModel } from "../../src/model/load.js";
import { buildColocatedEngine, buildPdEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { remoteAttention } from "../helpers/attention-workers.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { inProcessPrefill } from "../pd/in-process-prefill.js";

const backend = nativeBackend();
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-families-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const FAMILIES = [
  "qwen3",
  "phi3",
  "phi3-longrope",
  "phi4-mini",
  "mixtral",
  "qwen3-moe",
  "gemma",
  "gemma2",
  "gemma3",
  "granite",
  "smollm3",
  "olmo2",
] as const;

/** Byte-token prompts (the tiny tokenizer's ids are bytes), long enough to cross phi3-longrope's switch at 8. */
const PROMPTS = ["Once upon a time", "The dog", "Lily and Ben went to the park and saw"].map((p) => [
  256,
  ...Buffer.from(p),
]);

function requests(): GenerateRequest[] {
  return PROMPTS.map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: p,
    params: greedy(12 + 2 * i, { ignoreEos: true }),
  }));
}

// Small steps, so prompts are prefilled in several chunks while others decode.
const SIZES: EngineOptions = { maxTokensPerStep: 8, maxRunning: 4, blockSize: 4 };
const tokensOf = (res: Map<string, { tokens: number[] }>) => [...res.values()].map((c) => c.tokens);

for (const family of FAMILIES) {
  describe(`tiny ${family}: every placement gives the colocated greedy tokens`, async () => {
    const model = await loadModel(writeTinyModel(path.join(tmp, family), family).dir);
    const expected = tokensOf(await runToCompletion(buildColocatedEngine(model, backend, SIZES), requests()));

    const workerCases = [
      { workers: 1, partition: "head", depth: 1, transport: "shm" },
      { workers: 2, partition: "head", depth: 2, transport: "shm" },
      { workers: 2, partition: "request", depth: 2, transport: "tcp" },
    ] as const;
    for (const p of workerCases) {
      it(`${p.workers} attention worker(s), ${p.partition} partition, depth ${p.depth}, ${p.transport}`, async () => {
        const { service, workers } = await remoteAttention(model, backend, { ...p, blockSize: 4 });
        try {
          const core = buildColocatedEngine(model, backend, { ...SIZES, pipelineDepth: p.depth }, service);
          assert.deepEqual(tokensOf(await runToCompletion(core, requests())), expected);
          for (const s of await service.workerStats())
            assert.equal(s?.usedBlocks ?? 0, 0, "no KV block left");
        } finally {
          await service.close();
          for (const w of workers) await w.close();
        }
      });
    }

    for (const o of [{ mode: "pd" }, { mode: "adrenaline", offloadRatio: 1 }] as const) {
      it(`${o.mode}, 1 prefill instance`, async () => {
        const { opener, close } = inProcessPrefill(model, backend, 16, 64 << 20, "shm");
        const { core, attention } = await buildPdEngine(
          model,
          backend,
          { ...SIZES, ...o, prefillInstances: 1 },
          { log: () => {}, prefillOpener: opener },
        );
        try {
          assert.deepEqual(tokensOf(await runToCompletion(core, requests())), expected);
          for (const u of attention.usage()) assert.equal(u.usedBlocks, 0, `no KV block left on ${u.worker}`);
        } finally {
          await attention.close();
          await close();
        }
      });
    }
  });
}
