// GLM-4.5 through GGUF: llama.cpp's glm4moe keys (leading dense layers, sigmoid gating, the
// correction bias as exp_probs_b, the routed weights' scale and norm, the shared expert counted in
// experts) and tensors, read back as written; a file whose multi-token-prediction layer follows the
// decoder's loads without it; what llama.cpp's glm4moe cannot run is refused. (That llama.cpp
// computes the same tokens from the exported file is in gguf-llamacpp.test.ts.)
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { loadModel } from "../../src/model/load.js";
import { ggufRoundTrip, rewriteGgufMetadata } from "./gguf-fixtures.js";
import { readGguf } from "./gguf-reader.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-glm4moe-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("GLM-4.5 through GGUF", () => {
  it("writes llama.cpp's glm4moe keys and tensors and loads back with the same config and tokens", async () => {
    const { file, model } = await ggufRoundTrip(path.join(tmp, "tiny"), "glm4-moe", "glm4moe");
    const g = readGguf(file);
    const k = (name: string) => g.metadata.get(`glm4moe.${name}`);
    assert.deepEqual(
      [
        k("expert_count"),
        k("expert_used_count"),
        k("expert_feed_forward_length"),
        k("expert_shared_count"),
        k("leading_dense_block_count"),
        k("expert_gating_func"),
        k("expert_weights_norm"),
        k("rope.dimension_count"),
      ],
      [4, 2, 32, 1, 1, 2, true, 16],
    );
    assert.ok(Math.abs((k("expert_weights_scale") as number) - 2.5) < 1e-6);
    const bias = g.tensors.get("blk.1.exp_probs_b.bias")!;
    assert.deepEqual(bias.shape, [4]);
    assert.deepEqual(
      new Float32Array(bias.data.slice().buffer),
      model.weights.get("model.layers.1.mlp.gate.e_score_correction_bias")!.data,
    );
    assert.deepEqual(g.tensors.get("blk.0.ffn_gate.weight")!.shape, [128, 64], "layer 0 is dense");
    assert.ok(!g.tensors.has("blk.0.ffn_gate_exps.weight"));
    assert.deepEqual(g.tensors.get("blk.2.ffn_down_shexp.weight")!.shape, [64, 32]);
    assert.deepEqual(g.tensors.get("blk.1.attn_q_norm.weight")!.shape, [32]);
  });

  it("a routing llama.cpp's glm4moe lacks is refused by name", async () => {
    const { model } = await ggufRoundTrip(path.join(tmp, "refused"), "glm4-moe", "glm4moe");
    const moe = model.config.moe!;
    const softmax = { ...model.config, moe: { ...moe, sigmoidScores: false } };
    assert.throws(
      () => modelToGguf({ ...model, config: softmax }, path.join(tmp, "softmax.gguf")),
      /llama\.cpp's glm4moe wants leading dense layers, then every layer a mixture scored by sigmoid/,
    );
    const oddShared = { ...model.config, moe: { ...moe, sharedExpertSize: 40 } };
    assert.throws(
      () => modelToGguf({ ...model, config: oddShared }, path.join(tmp, "odd.gguf")),
      /a shared expert a whole number of experts wide \(40 for experts 32 wide\)/,
    );
  });

  it("a file's next-token-prediction layers after the decoder's are left out", async () => {
    const { file, model } = await ggufRoundTrip(path.join(tmp, "nextn"), "glm4-moe", "glm4moe");
    // The same file claiming its last layer is an MTP layer: the decoder is one layer shorter.
    const shorter = path.join(tmp, "nextn-1.gguf");
    rewriteGgufMetadata(file, shorter, (m) => m.set("glm4moe.nextn_predict_layers", 1));
    const back = await loadModel(shorter);
    assert.equal(back.config.numLayers, model.config.numLayers - 1);
    assert.deepEqual(back.config.moe!.sparseLayers, [false, true]);
  });
});
