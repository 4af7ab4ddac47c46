// ERNIE 4.5 MoE through GGUF: llama.cpp's ernie4_5-moe keys (leading dense layers, the mixtures'
// step, each expert's and the shared expert's width), the selection bias as the 1-D exp_probs_b and
// the shared expert as ffn_*_shexp, read back as written; mixture layers llama.cpp cannot state are
// refused. (That llama.cpp computes the same tokens from the exported file is in
// gguf-llamacpp.test.ts, with the other tiny variants.)
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { loadModel } from "../../src/model/load.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { ggufRoundTrip } from "./gguf-fixtures.js";
import { readGguf } from "./gguf-reader.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-ernie-moe-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("ERNIE 4.5 MoE through GGUF", () => {
  it("writes llama.cpp's ernie4_5-moe keys and tensors and loads back with the same config and tokens", async () => {
    const { file, model } = await ggufRoundTrip(path.join(tmp, "tiny"), "ernie4_5-moe", "ernie4_5-moe");
    const g = readGguf(file);
    const k = (name: string) => g.metadata.get(`ernie4_5-moe.${name}`);
    assert.deepEqual(
      [k("expert_count"), k("expert_used_count"), k("expert_feed_forward_length")],
      [4, 2, 32],
    );
    assert.deepEqual([k("leading_dense_block_count"), k("interleave_moe_layer_step")], [1, 1]);
    assert.equal(k("expert_shared_feed_forward_length"), 32);
    const bias = g.tensors.get("blk.1.exp_probs_b.bias")!;
    assert.deepEqual([bias.type, bias.shape], [0, [4]], "the selection bias as an f32 vector");
    const written = model.weights.get("model.layers.1.mlp.moe_statics.e_score_correction_bias")!;
    assert.deepEqual(new Float32Array(bias.data.slice().buffer), written.data);
    assert.deepEqual(g.tensors.get("blk.2.ffn_gate_shexp.weight")!.shape, [32, 64]);
    assert.deepEqual(g.tensors.get("blk.1.ffn_gate_exps.weight")!.shape, [4, 32, 64]);
    assert.ok(
      g.tensors.has("blk.0.ffn_gate.weight") && !g.tensors.has("blk.0.ffn_gate_inp.weight"),
      "layer 0 dense",
    );
    // q/k rows as the checkpoint stores them (interleaved RoPE pairs), as for the dense ERNIE.
    const raw = writeTinyModel(path.join(tmp, "as-written"), "ernie4_5-moe").weights;
    const q = g.tensors.get("blk.2.attn_q.weight")!;
    assert.deepEqual(
      new Float32Array(q.data.slice().buffer),
      raw.get("model.layers.2.self_attn.q_proj.weight")!.data,
    );
  });

  it("mixture layers llama.cpp's lead-and-step rule cannot state are refused by name", async () => {
    const dir = writeTinyModel(path.join(tmp, "pattern"), "ernie4_5-moe").dir;
    const model = await loadModel(dir);
    const odd = { ...model.config, moe: { ...model.config.moe!, sparseLayers: [true, false, true] } };
    assert.throws(
      () => modelToGguf({ ...model, config: odd }, `${dir}.gguf`),
      /llama\.cpp's ernie4_5-moe wants renormalised experts on every step-th layer .* on layers 0, 2$/,
    );
  });
});
