// EXAONE 4 through GGUF: a 64-layer model (the 32B's shape, the one llama.cpp's exaone4 gives a
// window) writes its window under attention.sliding_window and loads back with the same window
// layers and global layers without RoPE, and the same tokens; the 1.2B's shape (no window) is
// compared with llama.cpp itself in gguf-llamacpp.test.ts.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { loadModel } from "../../src/model/load.js";
import { engineBackends } from "../helpers/backends.js";
import { generateAlone } from "../helpers/engine-driver.js";
import { base } from "../helpers/tiny-base.js";
import { writeTinyModelOf } from "../helpers/tiny-models.js";
import { readGguf } from "./gguf-reader.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-exaone4-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("EXAONE 4 through GGUF", () => {
  it("a 64-layer model's window layers travel as llama.cpp's exaone4 reads them", async () => {
    const dir = path.join(tmp, "exaone4-64");
    writeTinyModelOf(dir, {
      config: {
        ...base,
        architectures: ["Exaone4ForCausalLM"],
        model_type: "exaone4",
        hidden_size: 32,
        intermediate_size: 32,
        num_hidden_layers: 64,
        num_attention_heads: 2,
        num_key_value_heads: 1,
        sliding_window: 5,
        sliding_window_pattern: "LLLG",
      },
      dtype: "f32",
      seed: 43,
    });
    const model = await loadModel(dir);
    assert.deepEqual(model.config.ropeLayers, model.config.slidingLayers);
    const file = `${dir}.gguf`;
    assert.equal(modelToGguf(model, file).architecture, "exaone4");
    assert.equal(readGguf(file).metadata.get("exaone4.attention.sliding_window"), 5);
    const back = await loadModel(file);
    assert.deepEqual(back.config, model.config);
    const backend = engineBackends()[0]!.backend;
    const ids = model.tokenizer.encode("Hello, world");
    assert.deepEqual(
      await generateAlone(back, backend, ids, 12),
      await generateAlone(model, backend, ids, 12),
    );
  });
});
