// Gemma, Gemma 2 and Gemma 3 (text) config.json: transformers' defaults for what a file leaves out, the
// window layers each form names, and every field we cannot run faithfully refused by name.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { describeFamily } from "../../src/model/config.js";
import { expectedTensors } from "../../src/model/expected-tensors.js";
import { parseHfConfig } from "../../src/model/hf-config.js";

const F = "gemma/config.json";
const common = {
  vocab_size: 100,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 6,
  num_attention_heads: 4,
  num_key_value_heads: 2,
};
const gemma2 = { ...common, model_type: "gemma2" };
const gemma3 = { ...common, model_type: "gemma3_text" };

describe("Gemma config.json", () => {
  test("gemma (1): tied, head_dim 256, GeGLU whatever hidden_act says, llama-style norms, no window or soft-caps", () => {
    const c = parseHfConfig({ ...common, model_type: "gemma", hidden_act: "gelu", sliding_window: 4096 }, F);
    assert.equal(c.headDim, 256);
    assert.equal(c.tieWordEmbeddings, true);
    assert.equal(c.activation, "gelu_tanh");
    assert.ok(c.normPlusOne && c.embedScale);
    assert.equal(c.postNorms, undefined);
    assert.equal(c.attentionScale, undefined, "head_dim^-½, the default");
    assert.equal(c.slidingWindow, null);
    assert.equal(c.attnSoftcap, undefined);
    assert.equal(c.finalSoftcap, undefined);
    const names = expectedTensors(c).map((t) => t.name);
    assert.ok(names.includes("model.layers.5.post_attention_layernorm.weight"));
    assert.ok(!names.includes("model.layers.5.pre_feedforward_layernorm.weight"));
    assert.throws(
      () => parseHfConfig({ ...common, model_type: "gemma", hidden_activation: "relu" }, F),
      /hidden_activation "relu" is not supported for gemma/,
    );
  });

  test("gemma2: transformers' defaults (soft-caps 50 and 30, head_dim 256, tied, scale 256^-½, even layers windowed)", () => {
    const c = parseHfConfig(gemma2, F);
    assert.equal(c.attnSoftcap, 50);
    assert.equal(c.finalSoftcap, 30);
    assert.equal(c.headDim, 256);
    assert.equal(c.tieWordEmbeddings, true);
    assert.equal(c.attentionScale, 1 / 16);
    assert.equal(c.slidingWindow, 4096);
    assert.deepEqual(c.slidingLayers, [true, false, true, false, true, false]);
    assert.equal(c.activation, "gelu_tanh");
    assert.ok(c.normPlusOne && c.embedScale && c.postNorms);
    assert.equal(c.qkNorm, undefined);
    assert.equal(c.localRopeTheta, undefined);
    const names = expectedTensors(c).map((t) => t.name);
    for (const n of ["pre_feedforward_layernorm", "post_feedforward_layernorm", "post_attention_layernorm"])
      assert.ok(names.includes(`model.layers.5.${n}.weight`), n);
    assert.ok(!names.includes("lm_head.weight"));
    assert.match(
      describeFamily(c),
      /attention soft-cap 50, final soft-cap 30, sliding window 4096 on 3 of 6 layers/,
    );
  });

  test("gemma2: an explicit null turns a soft-cap off; query_pre_attn_scalar sets the scale", () => {
    const c = parseHfConfig(
      { ...gemma2, attn_logit_softcapping: null, final_logit_softcapping: null, query_pre_attn_scalar: 144 },
      F,
    );
    assert.equal(c.attnSoftcap, undefined);
    assert.equal(c.finalSoftcap, undefined);
    assert.equal(c.attentionScale, 1 / 12);
  });

  test("gemma3: every 6th layer global by default, sliding_window_pattern and layer_types, q/k norms, local RoPE base", () => {
    const c = parseHfConfig({ ...gemma3, rope_scaling: { rope_type: "linear", factor: 8 } }, F);
    assert.deepEqual(c.slidingLayers, [true, true, true, true, true, false]);
    assert.equal(c.qkNorm, true);
    assert.equal(c.localRopeTheta, 10000);
    assert.equal(c.ropeTheta, 1e6);
    assert.deepEqual(c.ropeScaling, { type: "linear", factor: 8 });
    assert.equal(c.attnSoftcap, undefined);
    assert.equal(c.finalSoftcap, undefined);
    assert.ok(expectedTensors(c).some((t) => t.name === "model.layers.0.self_attn.q_norm.weight"));
    const p2 = parseHfConfig({ ...gemma3, sliding_window_pattern: 2, rope_local_base_freq: 5000 }, F);
    assert.deepEqual(p2.slidingLayers, [true, false, true, false, true, false]);
    assert.equal(p2.localRopeTheta, 5000);
    const types = [
      "full_attention",
      "sliding_attention",
      "full_attention",
      "full_attention",
      "sliding_attention",
      "full_attention",
    ];
    const lt = parseHfConfig({ ...gemma3, layer_types: types, sliding_window_pattern: 2 }, F);
    assert.deepEqual(lt.slidingLayers, [false, true, false, false, true, false]);
    const none = parseHfConfig({ ...gemma3, layer_types: types.map(() => "full_attention") }, F);
    assert.equal(none.slidingWindow, null);
    assert.equal(none.slidingLayers, undefined);
  });

  test("what we do not run is refused by name", () => {
    const refuse = (json: object, re: RegExp) => assert.throws(() => parseHfConfig(json, F), re);
    refuse({ ...gemma2, hidden_activation: "gelu" }, /hidden_activation "gelu" is not supported for gemma2/);
    refuse({ ...gemma3, hidden_act: "silu", hidden_activation: undefined }, /hidden_activation "silu"/);
    refuse({ ...gemma3, layer_types: ["sliding_attention"] }, /layer_types has 1 entries for 6 layers/);
    refuse(
      { ...gemma3, layer_types: Array(6).fill("chunked_attention") },
      /layer_types\[0\] = "chunked_attention" is not supported for gemma3_text/,
    );
    refuse({ ...gemma3, use_bidirectional_attention: true }, /use_bidirectional_attention=true/);
    refuse({ ...gemma2, attention_bias: true }, /attention_bias=true/);
    refuse(
      { ...gemma3, rope_parameters: { full_attention: { rope_type: "default" }, sliding_attention: {} } },
      /rope_parameters given per layer type/,
    );
    // The multimodal wrapper's type needs the text model's config nested (hf-multimodal.test.ts).
    refuse({ ...gemma3, model_type: "gemma3" }, /model_type "gemma3" without a text_config object/);
  });
});
