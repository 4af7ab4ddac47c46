// OLMo 2 through GGUF: the post-block norms under llama.cpp's names (post_attention_norm,
// post_ffw_norm), whole-projection q/k norms, q/k rows as stored (rotate-half RoPE), read back as
// written; OLMo 3 as olmo2 with a window, its pattern as llama.cpp fixes it; OLMoE as olmoe. (That llama.cpp computes the same tokens from
// the exported file is in gguf-llamacpp.test.ts, with the other tiny variants.)
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { windowLayersOf } from "../../src/model/gguf-config.js";
import { ggufRoundTrip } from "./gguf-fixtures.js";
import { readGguf } from "./gguf-reader.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-olmo2-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("OLMo 2 through GGUF", () => {
  it("writes llama.cpp's olmo2 tensors and loads back with the same config and the same tokens", async () => {
    const { file } = await ggufRoundTrip(path.join(tmp, "tiny-olmo2"), "olmo2", "olmo2");
    const names = [...readGguf(file).tensors.keys()].filter((n) => n.startsWith("blk.0."));
    assert.deepEqual(names.filter((n) => n.includes("norm")).sort(), [
      "blk.0.attn_k_norm.weight",
      "blk.0.attn_q_norm.weight",
      "blk.0.post_attention_norm.weight",
      "blk.0.post_ffw_norm.weight",
    ]);
  });

  it("OLMo 3 as llama.cpp's olmo2 with a window: written, read back with the same config and tokens", async () => {
    const { file } = await ggufRoundTrip(path.join(tmp, "tiny-olmo3"), "olmo3", "olmo2");
    const meta = readGguf(file).metadata;
    assert.equal(meta.get("olmo2.attention.sliding_window"), 6);
    assert.equal(meta.get("olmo2.rope.scaling.type"), "yarn");
    assert.equal(meta.has("olmo2.rope.freq_base_swa"), false, "the window layers' base is the model's");
  });

  it("a window pattern from the file: bools, or every n-th layer full; llama.cpp's every fourth by default", () => {
    assert.deepEqual(windowLayersOf(undefined, 8), [true, true, true, false, true, true, true, false]);
    assert.deepEqual(windowLayersOf(2, 4), [true, false, true, false]);
    assert.deepEqual(windowLayersOf([true, false, true, true], 4), [true, false, true, true]);
    assert.equal(windowLayersOf([true], 4), "has 1 entries for 4 layers");
    assert.equal(windowLayersOf(0, 4), "= 0 is not a layer count");
  });

  it("window layers llama.cpp's olmo2 cannot state are refused on export", async () => {
    const dir = path.join(tmp, "olmo3-odd");
    const { model } = await ggufRoundTrip(dir, "olmo3", "olmo2");
    const odd = { ...model, config: { ...model.config, slidingLayers: [true, false, true, false] } };
    assert.throws(
      () => modelToGguf(odd, `${dir}-odd.gguf`),
      /llama\.cpp's olmo2 attends within its window on all but every fourth layer; this model's window layers are 0, 2/,
    );
  });
  it("OLMoE as llama.cpp's olmoe: loads back with the same config and tokens; grouped queries refused", async () => {
    const dir = path.join(tmp, "tiny-olmoe");
    const { model, file } = await ggufRoundTrip(dir, "olmoe", "olmoe");
    const g = readGguf(file);
    assert.equal(g.metadata.get("olmoe.expert_count"), 4);
    assert.equal(g.metadata.get("olmoe.feed_forward_length"), 32, "each expert's width");
    assert.deepEqual(g.tensors.get("blk.0.attn_k_norm.weight")!.shape, [64]);
    const gqa = { ...model, config: { ...model.config, numKvHeads: 2 } };
    assert.throws(() => modelToGguf(gqa, `${dir}-gqa.gguf`), /llama\.cpp's olmoe has no grouped queries/);
  });
});
