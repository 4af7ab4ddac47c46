// Qwen2-MoE through GGUF: llama.cpp's qwen2moe keys (each expert's width, the shared expert's) and
// tensors (the shared expert as ffn_*_shexp, its sigmoid gate as the 1-D ffn_gate_inp_shexp), read
// back as written; what llama.cpp's qwen2moe cannot run refused. (That llama.cpp computes the same
// tokens from the exported file is in gguf-llamacpp.test.ts.)
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { ggufRoundTrip } from "./gguf-fixtures.js";
import { readGguf } from "./gguf-reader.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-qwen2moe-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("Qwen2-MoE through GGUF", () => {
  it("writes llama.cpp's qwen2moe keys and tensors and loads back with the same config and tokens", async () => {
    const { file, model } = await ggufRoundTrip(path.join(tmp, "tiny"), "qwen2-moe", "qwen2moe");
    const g = readGguf(file);
    const k = (name: string) => g.metadata.get(`qwen2moe.${name}`);
    assert.deepEqual(
      [
        k("expert_count"),
        k("expert_used_count"),
        k("expert_feed_forward_length"),
        k("expert_shared_feed_forward_length"),
      ],
      [4, 2, 32, 48],
    );
    const gate = g.tensors.get("blk.1.ffn_gate_inp_shexp.weight")!;
    assert.deepEqual([gate.type, gate.shape], [0, [64]], "the shared expert's gate as an f32 vector");
    assert.deepEqual(
      new Float32Array(gate.data.slice().buffer),
      model.weights.get("model.layers.1.mlp.shared_expert_gate.weight")!.data,
    );
    assert.deepEqual(g.tensors.get("blk.2.ffn_down_shexp.weight")!.shape, [64, 48]);
    assert.deepEqual(g.tensors.get("blk.0.ffn_up_exps.weight")!.shape, [4, 32, 64]);
  });

  it("dense layers or renormalised top-k weights, which llama.cpp's qwen2moe lacks, are refused", async () => {
    const { model } = await ggufRoundTrip(path.join(tmp, "refused"), "qwen2-moe", "qwen2moe");
    const moe = model.config.moe!;
    const dense = { ...model.config, moe: { ...moe, sparseLayers: [true, false, true] } };
    assert.throws(
      () => modelToGguf({ ...model, config: dense }, path.join(tmp, "dense.gguf")),
      /llama\.cpp's qwen2moe makes every layer a mixture without renormalising/,
    );
    const renorm = { ...model.config, moe: { ...moe, normalizeTopK: true } };
    assert.throws(
      () => modelToGguf({ ...model, config: renorm }, path.join(tmp, "renorm.gguf")),
      /without renormalising the top-k weights/,
    );
  });
});
