// GLM-4-0414 through GGUF: llama.cpp's glm4 names for its four norms (post_self_attn_layernorm as
// post_attention_norm, post_attention_layernorm as ffn_norm, post_mlp_layernorm as post_ffw_norm),
// gate/up fused as ffn_up, q/k rows and biases as the checkpoint stores them (interleaved pairs over
// the rotated half of each head), rope.dimension_count the rotated dims; read back as written.
// (That llama.cpp computes the same tokens from the exported file is in gguf-llamacpp.test.ts.)
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { ggufRoundTrip } from "./gguf-fixtures.js";
import { readGguf } from "./gguf-reader.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-glm4-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("GLM-4 through GGUF", () => {
  it("writes llama.cpp's glm4 tensors and keys and loads back with the same config and tokens", async () => {
    const { file, model } = await ggufRoundTrip(path.join(tmp, "tiny"), "glm4", "glm4");
    const g = readGguf(file);
    assert.equal(g.metadata.get("glm4.rope.dimension_count"), 16);
    assert.equal(model.config.rotaryDim, 16);
    const t = (name: string) => g.tensors.get(name)!;
    const f32 = (name: string) => new Float32Array(t(name).data.slice().buffer);
    const w = (name: string) => model.weights.get(`model.layers.1.${name}`)!.data;
    assert.deepEqual(f32("blk.1.post_attention_norm.weight"), w("post_self_attn_layernorm.weight"));
    assert.deepEqual(f32("blk.1.ffn_norm.weight"), w("post_attention_layernorm.weight"));
    assert.deepEqual(f32("blk.1.post_ffw_norm.weight"), w("post_mlp_layernorm.weight"));
    assert.deepEqual(t("blk.0.ffn_up.weight").shape, [256, 64]);
    assert.ok(!g.tensors.has("blk.0.ffn_gate.weight") && !g.tensors.has("blk.0.attn_output.bias"));
    // q/k rows and biases as the checkpoint stores them: llama.cpp's glm4 rotates interleaved pairs.
    const raw = writeTinyModel(path.join(tmp, "as-written"), "glm4").weights;
    assert.deepEqual(f32("blk.1.attn_k.weight"), raw.get("model.layers.1.self_attn.k_proj.weight")!.data);
    assert.deepEqual(f32("blk.1.attn_q.bias"), raw.get("model.layers.1.self_attn.q_proj.bias")!.data);
  });
});
