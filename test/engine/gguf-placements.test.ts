// A model loaded from a quantized GGUF file (weights kept in their block formats) runs on every kind
// of placement: attention workers (head and request partitioning, pipelining, shm and TCP), PD and
// Adrenaline all give the colocated engine's greedy tokens and leave no KV block behind.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import type { GenerateRequest } from "../../src/engine/api.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { parseHfConfig } from "../../src/model/hf-config.js";
import { loadModel } from "../../src/model/load.js";
import { randomWeights } from "../../src/model/random-weights.js";
import { writeSafetensors } from "../../src/model/safetensors-writer.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine, buildPdEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { remoteAttention } from "../helpers/attention-workers.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { inProcessPrefill } from "../pd/in-process-prefill.js";

const backend = nativeBackend();
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-placements-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const SIZES: EngineOptions = { maxTokensPerStep: 8, maxRunning: 4, blockSize: 4 };
const tokensOf = (res: Map<string, { tokens: number[] }>) => [...res.values()].map((c) => c.tokens);

function requests(model: LoadedModel): GenerateRequest[] {
  return ["Once upon a time", "The dog", "Lily and Ben went to the park and saw"].map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: model.tokenizer.encode(p),
    params: greedy(10 + 2 * i, { ignoreEos: true }),
  }));
}

/** stories260K at Q8_0 (with f32 down projections), and a 256-wide tiny llama at Q4_K_M (Q4_K + Q6_K). */
async function quantizedModels(): Promise<[string, LoadedModel][]> {
  const stories = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
  modelToGguf(stories, path.join(tmp, "stories-q8_0.gguf"), { quantize: "q8_0" });
  const dir = path.join(tmp, "tiny-wide");
  writeTinyModel(dir, "llama-gqa");
  const file = path.join(dir, "config.json");
  const json = { ...JSON.parse(readFileSync(file, "utf8")), hidden_size: 256, intermediate_size: 512 };
  writeFileSync(file, JSON.stringify(json));
  const weights = randomWeights(parseHfConfig(json, file), { dtype: "f32", seed: 5, embedStd: 0.5 });
  writeSafetensors(path.join(dir, "model.safetensors"), weights.values(), { format: "pt" });
  modelToGguf(await loadModel(dir), path.join(tmp, "wide-q4_k_m.gguf"), { quantize: "q4_k_m" });
  return [
    ["stories260K Q8_0", await loadModel(path.join(tmp, "stories-q8_0.gguf"))],
    ["tiny llama Q4_K_M", await loadModel(path.join(tmp, "wide-q4_k_m.gguf"))],
  ];
}

for (const [name, model] of await quantizedModels()) {
  describe(`${name} from GGUF: every placement gives the colocated greedy tokens`, async () => {
    const quantized = [...model.weights.values()].filter((t) => t.dtype.startsWith("q")).length;
    assert.ok(quantized > 0, "the model keeps quantized matrices");
    const expected = tokensOf(
      await runToCompletion(buildColocatedEngine(model, backend, SIZES), requests(model)),
    );

    it("with quantized weights as stored only (--no-weight-packing): the same tokens, and no packed copy", async () => {
      const asStored = loadKernelBackend({ backend: "native", threads: 2, weightPacking: false });
      const core = buildColocatedEngine(model, asStored, SIZES);
      assert.deepEqual(tokensOf(await runToCompletion(core, requests(model))), expected);
      assert.doesNotMatch(asStored.describe(), /packed/);
      // The default backend packed the 32-value block formats' matrices of 16 rows or more, where the CPU
      // has the row path for them (it is shared by both models: only the first packs).
      const packable = [...model.weights.values()].some(
        (t) => ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl"].includes(t.dtype) && t.shape[0]! >= 16,
      );
      if ((backend as NativeBackend).quantInfo().packedRows && packable)
        assert.match(backend.describe(), /MiB of 32-value block weights .* also packed 16 rows a vector/);
    });

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
          assert.deepEqual(tokensOf(await runToCompletion(core, requests(model))), expected);
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
          assert.deepEqual(tokensOf(await runToCompletion(core, requests(model))), expected);
          for (const u of attention.usage()) assert.equal(u.usedBlocks, 0, `no KV block left on ${u.worker}`);
        } finally {
          await attention.close();
          await close();
        }
      });
    }
  });
}
