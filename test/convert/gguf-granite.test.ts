// Granite through GGUF: the multipliers under llama.cpp's granite keys, read back as written, and
// the files llama.cpp's granite would run differently refused by name (that llama.cpp computes the
// same tokens from the exported file is in gguf-llamacpp.test.ts, with the other tiny variants); and
// GraniteMoE as llama.cpp's granitemoe, against llama.cpp here.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { gguf, writeGguf } from "../../src/convert/gguf-writer.js";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import type { ModelConfig } from "../../src/model/config.js";
import { loadModel } from "../../src/model/load.js";
import { randomWeights } from "../../src/model/random-weights.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { engineBackends } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";
import { TIED_EMBED_STD } from "../helpers/tiny-base.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { ggufRoundTrip, minimalMeta, onesF32 } from "./gguf-fixtures.js";
import { readGguf } from "./gguf-reader.js";
import { llamaCppFixture, llamaCppGreedy } from "./llama-cpp.js";

const llamaCpp = llamaCppFixture("lamina-gguf-granite-");
const tmp = llamaCpp.tmp;

describe("Granite through GGUF", () => {
  it("writes llama.cpp's granite keys and loads back with the same config and the same tokens", async () => {
    const { file } = await ggufRoundTrip(path.join(tmp, "tiny-granite"), "granite", "granite");
    const meta = readGguf(file).metadata;
    assert.equal(meta.get("granite.logit_scale"), 8);
    assert.equal(meta.get("granite.attention.scale"), 0.0625);
    assert.equal(meta.get("granite.embedding_scale"), 2);
    assert.equal(meta.get("granite.residual_scale"), 2.5);
  });

  it("a file without the logit scale, with RoPE off, or with negative scales is refused on import", async () => {
    const file = path.join(tmp, "bad-granite.gguf");
    const embd = onesF32("token_embd.weight", [4, 8]);
    const base = minimalMeta("granite");
    const logit = { key: "granite.logit_scale", value: gguf.f32(8) };
    const cases = [
      [base, /missing metadata "granite\.logit_scale"/],
      [
        [...base, { key: "granite.logit_scale", value: gguf.f32(0) }],
        /"granite\.logit_scale" = 0 is not positive/,
      ],
      [
        [...base, logit, { key: "granite.rope.scaling.finetuned", value: gguf.bool(false) }],
        /granite without RoPE/,
      ],
      [
        [...base, logit, { key: "granite.residual_scale", value: gguf.f32(-1) }],
        /"granite\.residual_scale" = -1 is negative/,
      ],
      [
        [...base, logit, { key: "granite.expert_count", value: gguf.u32(4) }],
        /experts in the granite architecture are not supported/,
      ],
    ] as const;
    for (const [kv, why] of cases) {
      writeGguf(file, kv, [embd]);
      await assert.rejects(loadModel(file), why);
    }
  });

  it("GraniteMoE (a granite with experts) as llama.cpp's granitemoe: the same 30 greedy tokens, and back", async () => {
    // No Hugging Face GraniteMoE directory is read (it stacks each projection's experts): the tiny
    // Granite's config with every layer a mixture of 4 experts, top-2 renormalised, as llama.cpp's
    // granitemoe runs them, and random weights for it.
    const d = path.join(tmp, "tiny-granite-moe");
    writeTinyModel(d, "granite");
    const dense = await loadModel(d);
    const config: ModelConfig = {
      ...dense.config,
      moe: {
        numExperts: 4,
        topK: 2,
        expertIntermediateSize: dense.config.intermediateSize,
        normalizeTopK: true,
        sparseLayers: Array.from({ length: dense.config.numLayers }, () => true),
      },
    };
    const model: LoadedModel = {
      ...dense,
      config,
      weights: randomWeights(config, { dtype: "bf16", seed: 31, embedStd: TIED_EMBED_STD }),
    };
    const file = `${d}-moe.gguf`;
    assert.equal(modelToGguf(model, file).architecture, "granitemoe");
    const meta = readGguf(file).metadata;
    assert.equal(meta.get("granitemoe.expert_count"), 4);
    assert.equal(meta.get("granitemoe.logit_scale"), 8);
    const back = await loadModel(file);
    assert.deepEqual(back.config, config);
    const ids = model.tokenizer.encode("Hello, world");
    const backend = engineBackends()[0]!.backend;
    const run = async (m: LoadedModel) => {
      const core = buildColocatedEngine(m, backend, { maxRunning: 1, kvBlocks: 64 });
      const params = greedy(30, { ignoreEos: true });
      return (await runToCompletion(core, [{ id: "p", promptTokenIds: ids, params }])).get("p")!.tokens;
    };
    const gguf = await llamaCpp.loadModel(file);
    try {
      const theirs = await llamaCppGreedy(gguf, ids, 30, -1, 1);
      assert.equal(theirs.length, 30);
      assert.ok(new Set(theirs).size >= 5, `a degenerate continuation: ${theirs.join(" ")}`);
      assert.deepEqual(await run(model), theirs);
      assert.deepEqual(await run(back), theirs);
    } finally {
      await gguf.dispose();
    }
    const notAll = { ...model, config: { ...config, moe: { ...config.moe!, normalizeTopK: false } } };
    assert.throws(
      () => modelToGguf(notAll, `${d}-x.gguf`),
      /llama\.cpp's granitemoe makes every layer a mixture/,
    );
  });
});
