// SmolLM3 through GGUF: llama.cpp's smollm3 fixes its no-RoPE layers at every fourth (no key states
// them), so the file carries the architecture alone; a model with other no-RoPE layers is refused on
// export. (That llama.cpp computes the same tokens from the exported file is in
// gguf-llamacpp.test.ts, with the other tiny variants.)
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { loadModel } from "../../src/model/load.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { ggufRoundTrip } from "./gguf-fixtures.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-smollm3-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("SmolLM3 through GGUF", () => {
  it("loads back with layer 3 of 4 without RoPE and the same tokens", async () => {
    const { model } = await ggufRoundTrip(path.join(tmp, "tiny-smollm3"), "smollm3", "smollm3");
    assert.deepEqual(model.config.ropeLayers, [true, true, true, false]);
  });

  it("other no-RoPE layers than every fourth are refused on export, by name", async () => {
    const d = path.join(tmp, "tiny-smollm3-other");
    writeTinyModel(d, "smollm3");
    const file = path.join(d, "config.json");
    writeFileSync(
      file,
      JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), no_rope_layers: [1, 0, 1, 1] }),
    );
    const model = await loadModel(d);
    assert.throws(
      () => modelToGguf(model, `${d}.gguf`),
      /llama\.cpp's smollm3 leaves RoPE out of every fourth layer .* this model's no-RoPE layers are 1$/,
    );
  });
});
