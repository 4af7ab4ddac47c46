// gpt-oss through GGUF: llama.cpp's gpt-oss keys (each expert's width, the window) and tensors (the
// sinks, o_proj's and the router's biases, the experts' biases stacked like their matrices, the
// norm before the FFN as post_attention_norm), read back as written; what llama.cpp's gpt-oss fixes
// (the window on the even layers, the SwiGLU's alpha and limit) refused when a model differs.
// (That llama.cpp computes the same tokens from the exported file is in gguf-llamacpp.test.ts, and
// at mxfp4_moe in gguf-quantize.test.ts.)
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { loadModel } from "../../src/model/load.js";
import { ggufRoundTrip, rewriteGgufMetadata } from "./gguf-fixtures.js";
import { readGguf } from "./gguf-reader.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-gpt-oss-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("gpt-oss through GGUF", () => {
  it("writes llama.cpp's gpt-oss keys and tensors and loads back with the same config and tokens", async () => {
    const { file, model } = await ggufRoundTrip(path.join(tmp, "tiny"), "gpt-oss", "gpt-oss");
    const g = readGguf(file);
    const k = (name: string) => g.metadata.get(`gpt-oss.${name}`);
    assert.deepEqual(
      [
        k("expert_count"),
        k("expert_used_count"),
        k("expert_feed_forward_length"),
        k("attention.sliding_window"),
      ],
      [4, 2, 32, 6],
    );
    assert.deepEqual([k("rope.scaling.type"), k("rope.scaling.factor")], ["yarn", 4]);
    const t = (name: string) => g.tensors.get(name)!;
    const f32 = (name: string) => new Float32Array(t(name).data.slice().buffer);
    assert.deepEqual([t("blk.1.attn_sinks.weight").type, t("blk.1.attn_sinks.weight").shape], [0, [4]]);
    assert.deepEqual(
      f32("blk.1.attn_sinks.weight"),
      model.weights.get("model.layers.1.self_attn.sinks")!.data,
    );
    assert.deepEqual(t("blk.0.attn_output.bias").shape, [64]);
    assert.deepEqual(t("blk.0.ffn_gate_inp.bias").shape, [4]);
    // Expert e's bias is row e of its projection's stack.
    assert.deepEqual(t("blk.2.ffn_down_exps.bias").shape, [4, 64]);
    assert.deepEqual(
      f32("blk.2.ffn_gate_exps.bias").subarray(3 * 32, 4 * 32),
      model.weights.get("model.layers.2.mlp.experts.3.gate_proj.bias")!.data,
    );
    assert.ok(g.tensors.has("blk.0.post_attention_norm.weight") && !g.tensors.has("blk.0.ffn_norm.weight"));
  });

  it("what llama.cpp's gpt-oss fixes is refused when a model differs", async () => {
    const { model } = await ggufRoundTrip(path.join(tmp, "refused"), "gpt-oss", "gpt-oss");
    const c = model.config;
    const odd = { ...c, slidingLayers: [false, true, false, true] };
    assert.throws(
      () => modelToGguf({ ...model, config: odd }, path.join(tmp, "odd.gguf")),
      /llama\.cpp's gpt-oss attends within its window on the even layers/,
    );
    const limit = { ...c, moe: { ...c.moe!, swigluClamp: { alpha: 1.702, limit: 5 } } };
    assert.throws(
      () => modelToGguf({ ...model, config: limit }, path.join(tmp, "limit.gguf")),
      /fixes the SwiGLU's alpha at 1\.702 and limit at 7; this model has 1\.702 and 5/,
    );
    const back = await loadModel(path.join(tmp, "refused.gguf"));
    assert.deepEqual(back.config.moe!.swigluClamp, { alpha: 1.702, limit: 7 });
  });

  it("generation ends at harmony's <|return|> and <|call|>, as llama.cpp's does", async () => {
    const { file } = await ggufRoundTrip(path.join(tmp, "harmony"), "gpt-oss", "gpt-oss");
    const named = path.join(tmp, "harmony-named.gguf");
    rewriteGgufMetadata(file, named, (m) => {
      const tokens = [...(m.get("tokenizer.ggml.tokens") as string[])];
      tokens[250] = "<|return|>";
      tokens[251] = "<|call|>";
      return m.set("tokenizer.ggml.tokens", tokens);
    });
    const model = await loadModel(named);
    const eos = model.generation.eosTokenIds ?? [];
    assert.ok(eos.includes(250) && eos.includes(251), `end tokens ${eos.join(", ")}`);
    assert.ok(!((await loadModel(file)).generation.eosTokenIds ?? []).includes(250), "not without the names");
  });
});
