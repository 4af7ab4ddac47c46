import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseGenerationConfig } from "../../src/model/generation-config.js";
import { parseHfConfig } from "../../src/model/hf-config.js";

const F = "model/config.json";
const llama = {
  model_type: "llama",
  vocab_size: 100,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 8,
};

describe("config.json", () => {
  test("defaults follow transformers", () => {
    const c = parseHfConfig(llama, F);
    assert.equal(c.architecture, "llama");
    assert.equal(c.numKvHeads, 8, "num_key_value_heads defaults to num_attention_heads");
    assert.equal(c.headDim, 8, "head_dim defaults to hidden/heads");
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.ropeScaling, null);
    assert.equal(c.tieWordEmbeddings, false);
    assert.equal(c.attentionBias, false);
    assert.equal(c.slidingWindow, null);
    assert.equal(c.maxPositionEmbeddings, 2048);
    assert.equal(c.rmsNormEps, 1e-6);
    assert.equal(c.bosTokenId, null);
    assert.deepEqual(c.eosTokenIds, []);
  });

  test("explicit fields, eos lists, llama3 and linear rope scaling", () => {
    const c = parseHfConfig(
      {
        ...llama,
        num_key_value_heads: 2,
        head_dim: 16,
        rope_theta: 500000,
        tie_word_embeddings: true,
        bos_token_id: 1,
        eos_token_id: [2, 3],
        rope_scaling: {
          rope_type: "llama3",
          factor: 8,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 8192,
        },
      },
      F,
    );
    assert.equal(c.numKvHeads, 2);
    assert.equal(c.headDim, 16);
    assert.equal(c.ropeTheta, 500000);
    assert.equal(c.tieWordEmbeddings, true);
    assert.equal(c.bosTokenId, 1);
    assert.deepEqual(c.eosTokenIds, [2, 3]);
    assert.deepEqual(c.ropeScaling, {
      type: "llama3",
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    });
    const lin = parseHfConfig({ ...llama, eos_token_id: 5, rope_scaling: { type: "linear", factor: 4 } }, F);
    assert.deepEqual(lin.ropeScaling, { type: "linear", factor: 4 });
    assert.deepEqual(lin.eosTokenIds, [5]);
    // transformers ≥ 5 writes rope_parameters instead.
    const v5 = parseHfConfig({ ...llama, rope_parameters: { rope_type: "default", rope_theta: 1e6 } }, F);
    assert.equal(v5.ropeTheta, 1e6);
    assert.equal(v5.ropeScaling, null);
  });

  test("mistral keeps its sliding window; qwen2 always has q/k/v biases", () => {
    const m = parseHfConfig({ ...llama, model_type: "mistral", sliding_window: 4096 }, F);
    assert.equal(m.architecture, "mistral");
    assert.equal(m.slidingWindow, 4096);
    assert.equal(m.maxPositionEmbeddings, 131072);
    const q = parseHfConfig(
      { ...llama, model_type: "qwen2", sliding_window: 4096, use_sliding_window: false },
      F,
    );
    assert.equal(q.attentionBias, true);
    assert.equal(q.slidingWindow, null, "qwen2 ignores sliding_window unless use_sliding_window");
  });

  test("errors name the file and what is wrong", () => {
    assert.throws(
      () => parseHfConfig({ ...llama, model_type: "gpt2" }, F),
      /model\/config\.json: unsupported model_type "gpt2" \(supported: llama, mistral, qwen2, qwen3, phi3, mixtral, qwen3_moe, gemma, gemma2, gemma3_text, granite, smollm3, olmo2, olmo3, olmoe, ernie4_5, ernie4_5_moe, gpt_oss, glm4, qwen2_moe, glm4_moe, seed_oss, exaone4\)/,
    );
    assert.throws(
      () => parseHfConfig({ ...llama, model_type: undefined }, F),
      /config\.json: missing "model_type"/,
    );
    assert.throws(() => parseHfConfig([], F), /config\.json: config\.json must be a JSON object/);
    assert.throws(
      () => parseHfConfig({ ...llama, hidden_size: "64" }, F),
      /model\/config\.json: invalid: hidden_size: /,
    );
    assert.throws(() => parseHfConfig({ ...llama, num_hidden_layers: 0 }, F), /invalid: num_hidden_layers/);
    assert.throws(
      () => parseHfConfig({ ...llama, num_key_value_heads: 3 }, F),
      /must be a multiple of num_key_value_heads \(3\)/,
    );
    assert.throws(
      () => parseHfConfig({ ...llama, rope_scaling: { type: "dynamic", factor: 4 } }, F),
      /config\.json: rope_scaling type "dynamic" is not supported \(supported: llama3, linear, longrope, yarn\)/,
    );
    assert.throws(
      () => parseHfConfig({ ...llama, rope_scaling: { rope_type: "llama3", factor: 8 } }, F),
      /rope_scaling of type "llama3" needs "low_freq_factor"/,
    );
    assert.throws(
      () => parseHfConfig({ ...llama, hidden_act: "gelu" }, F),
      /hidden_act "gelu" is not supported/,
    );
    assert.throws(() => parseHfConfig({ ...llama, attention_bias: true }, F), /attention_bias=true/);
    assert.throws(
      () => parseHfConfig({ ...llama, hidden_size: 60 }, F),
      /not divisible by num_attention_heads/,
    );
  });
});

describe("generation_config.json", () => {
  const G = "model/generation_config.json";
  test("eos int or list, sampling defaults, do_sample=false means greedy", () => {
    assert.deepEqual(
      parseGenerationConfig(
        {
          eos_token_id: [128001, 128009],
          do_sample: true,
          temperature: 0.6,
          top_p: 0.9,
          top_k: 50,
          repetition_penalty: 1.1,
          max_new_tokens: 256,
          transformers_version: "4.45.0",
        },
        G,
      ),
      {
        eosTokenIds: [128001, 128009],
        temperature: 0.6,
        topP: 0.9,
        topK: 50,
        repetitionPenalty: 1.1,
        maxNewTokens: 256,
      },
    );
    assert.deepEqual(parseGenerationConfig({ eos_token_id: 2, do_sample: false, temperature: 0.7 }, G), {
      eosTokenIds: [2],
      temperature: 0,
    });
    assert.deepEqual(parseGenerationConfig({}, G), {});
  });

  test("bad values name the file and the field", () => {
    assert.throws(
      () => parseGenerationConfig({ top_p: 1.5 }, G),
      /model\/generation_config\.json: invalid: top_p: /,
    );
    assert.throws(() => parseGenerationConfig({ eos_token_id: "2" }, G), /invalid: eos_token_id/);
  });
});
