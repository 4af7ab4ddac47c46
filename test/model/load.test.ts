import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { expectedTensors } from "../../src/model/expected-tensors.js";
import { loadModel } from "../../src/model/load.js";
import { loadRandomDemoModel, RANDOM_DEMO_LABEL } from "../../src/model/random-demo-model.js";
import { floatTensor, readElement } from "../../src/model/tensor.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-load-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("loadModel", () => {
  test("'random' gives the random-weight demo model: GQA, bf16, labelled as random", async () => {
    const a = await loadModel("random");
    const b = await loadRandomDemoModel();
    assert.equal(a.source.kind, "demo");
    assert.equal(a.source.label, RANDOM_DEMO_LABEL);
    assert.match(a.source.label, /random weights/);
    const c = a.config;
    assert.deepEqual(
      [c.hiddenSize, c.numLayers, c.numHeads, c.numKvHeads, c.intermediateSize, c.maxPositionEmbeddings],
      [256, 4, 8, 2, 768, 2048],
    );
    assert.equal(c.vocabSize, a.tokenizer.vocabSize);
    assert.equal(a.weights.size, expectedTensors(c).length);
    for (const t of a.weights.values()) {
      assert.equal(t.dtype, "bf16");
      assert.ok(t.data instanceof Uint16Array && t.data.buffer instanceof SharedArrayBuffer);
    }
    // Seeded: two loads give the same bytes.
    for (const [name, t] of a.weights) assert.deepEqual(b.weights.get(name)!.data, t.data, name);
    // Scaled sanely: q_proj has std ≈ 1/√256, the embeddings ≈ 0.1, norms exactly 1.
    const std = (name: string) => {
      const t = floatTensor(a.weights.get(name)!, name);
      let s = 0;
      for (let i = 0; i < t.data.length; i++) s += readElement(t.dtype, t.data, i) ** 2;
      return Math.sqrt(s / t.data.length);
    };
    assert.ok(Math.abs(std("model.layers.0.self_attn.q_proj.weight") - 1 / 16) < 0.005);
    assert.ok(Math.abs(std("model.embed_tokens.weight") - 0.1) < 0.01);
    assert.equal(std("model.norm.weight"), 1);
  });

  test("a directory is loaded as Hugging Face, a .bin as llama2.c with the tokenizer beside it", async () => {
    const hf = await loadModel(sharedDataPath("models", "stories260K", "hf"));
    assert.equal(hf.source.kind, "hf");
    const bin = await loadModel(sharedDataPath("models", "stories260K", "stories260K.bin"));
    assert.equal(bin.source.kind, "llama2c");
    assert.match(bin.source.tokenizerPath ?? "", /tok512\.bin$/);
    assert.deepEqual(bin.config, hf.config);
    assert.deepEqual(bin.tokenizer.encode("Once upon a time"), hf.tokenizer.encode("Once upon a time"));
    const explicit = await loadModel(sharedDataPath("models", "stories260K", "stories260K.bin"), {
      tokenizerPath: sharedDataPath("models", "stories260K", "tok512.bin"),
    });
    assert.equal(explicit.tokenizer.vocabSize, 512);
  });

  test("a tiny HF directory loads through loadModel", async () => {
    const tiny = writeTinyModel(path.join(tmp, "tiny"), "mistral");
    const model = await loadModel(tiny.dir);
    assert.deepEqual(model.config, tiny.config);
  });

  test("anything else is a clear error", async () => {
    await assert.rejects(
      loadModel(path.join(tmp, "nope", "model")),
      /no such file or directory, and not a Hugging Face Hub id.*demo \(the built-in stories260K\), or random/,
    );
    const txt = path.join(tmp, "notes.txt");
    writeFileSync(txt, "hello");
    await assert.rejects(
      loadModel(txt),
      /notes\.txt: a file that is not a llama2\.c \.bin checkpoint.*demo \(the built-in stories260K\), or random/,
    );
    const lonely = path.join(tmp, "lonely");
    rmSync(lonely, { recursive: true, force: true });
    writeTinyModel(lonely, "llama-mha");
    const bin = path.join(lonely, "model.bin");
    writeFileSync(bin, Buffer.alloc(28));
    await assert.rejects(loadModel(bin), /model\.bin: not a valid llama2\.c checkpoint header/);
    const alone = path.join(tmp, "stories.bin");
    copyFileSync(sharedDataPath("models", "stories260K", "stories260K.bin"), alone);
    await assert.rejects(
      loadModel(alone),
      /stories\.bin: no llama2\.c tokenizer found beside it .*tok512\.bin/,
    );
  });
});
