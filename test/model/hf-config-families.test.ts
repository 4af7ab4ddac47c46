import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { buildRopeTables } from "../../src/kernels/rope.js";
import { describeFamily, type RopeScaling } from "../../src/model/config.js";
import { expectedTensors } from "../../src/model/expected-tensors.js";
import { parseHfConfig } from "../../src/model/hf-config.js";

const F = "model/config.json";
const common = {
  vocab_size: 100,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
};
const qwen3 = { ...common, model_type: "qwen3", head_dim: 32 };
/** One field of a parsed YaRN scaling (undefined for any other kind). */
const field = <K extends keyof Extract<RopeScaling, { type: "yarn" }>>(s: RopeScaling | null, k: K) =>
  s?.type === "yarn" ? s[k] : undefined;
const phi3 = { ...common, model_type: "phi3" };
const mixtral = { ...common, model_type: "mixtral" };
const qwen3Moe = { ...common, model_type: "qwen3_moe", head_dim: 16, num_hidden_layers: 4 };
const granite = {
  ...common,
  model_type: "granite",
  embedding_multiplier: 12.0,
  residual_multiplier: 0.22,
  attention_multiplier: 0.015625,
  logits_scaling: 8.0,
  tie_word_embeddings: true,
};
const names = (c: Parameters<typeof expectedTensors>[0]) => expectedTensors(c).map((t) => t.name);

describe("config.json of the newer families", () => {
  test("qwen3: q/k norms, head_dim (128 when absent), refused sliding layers and biases", () => {
    const c = parseHfConfig(qwen3, F);
    assert.equal(c.qkNorm, true);
    assert.equal(c.headDim, 32);
    assert.equal(parseHfConfig({ ...qwen3, head_dim: undefined }, F).headDim, 128);
    assert.ok(names(c).includes("model.layers.1.self_attn.k_norm.weight"));
    assert.deepEqual(
      expectedTensors(c).find((t) => t.name.endsWith("0.self_attn.q_norm.weight"))?.shape,
      [32],
    );
    assert.throws(() => parseHfConfig({ ...qwen3, use_sliding_window: true }, F), /use_sliding_window=true/);
    assert.throws(
      () => parseHfConfig({ ...qwen3, layer_types: ["full_attention", "sliding_attention"] }, F),
      /layer_types\[1\] = "sliding_attention" is not supported/,
    );
    assert.throws(() => parseHfConfig({ ...qwen3, attention_bias: true }, F), /attention_bias=true/);
    // YaRN as Qwen3's model card enables it: the betas default to 32 and 1, the magnitude to
    // 0.1 · ln(factor) + 1; mscale / mscale_all_dim (DeepSeek's form) give a ratio; a factor left
    // out is max_position_embeddings / original; the ramp must run from fast to slow.
    const yarn = (rs: Record<string, unknown>) =>
      parseHfConfig(
        { ...qwen3, max_position_embeddings: 40960, rope_scaling: { rope_type: "yarn", ...rs } },
        F,
      ).ropeScaling;
    assert.deepEqual(yarn({ factor: 4, original_max_position_embeddings: 32768 }), {
      type: "yarn",
      factor: 4,
      originalMaxPositionEmbeddings: 32768,
      betaFast: 32,
      betaSlow: 1,
      attentionFactor: 1 + 0.1 * Math.log(4),
      truncate: true,
    });
    const deepseek = yarn({
      factor: 40,
      original_max_position_embeddings: 4096,
      mscale: 1,
      mscale_all_dim: 0.5,
      beta_fast: 16,
      truncate: false,
    });
    assert.equal(field(deepseek, "attentionFactor"), (1 + 0.1 * Math.log(40)) / (1 + 0.05 * Math.log(40)));
    assert.equal(field(deepseek, "betaFast"), 16);
    assert.equal(field(deepseek, "truncate"), false);
    assert.equal(field(yarn({ factor: 2, attention_factor: 1.5 }), "attentionFactor"), 1.5);
    assert.equal(field(yarn({ original_max_position_embeddings: 64 }), "factor"), 40960 / 64);
    assert.equal(field(yarn({ factor: 2 }), "originalMaxPositionEmbeddings"), 40960);
    assert.throws(
      () => yarn({ factor: 4, beta_fast: 1, beta_slow: 2 }),
      /beta_fast \(1\) must exceed beta_slow \(2\)/,
    );
  });

  test("phi3: fused projections; longrope as Phi-3.5-mini declares it", () => {
    const plain = parseHfConfig(phi3, F);
    assert.equal(plain.fusedProjections, true);
    assert.equal(plain.ropeScaling, null);
    assert.equal(plain.rmsNormEps, 1e-5);
    assert.deepEqual(names(plain).slice(1, 5), [
      "model.layers.0.input_layernorm.weight",
      "model.layers.0.self_attn.qkv_proj.weight",
      "model.layers.0.self_attn.o_proj.weight",
      "model.layers.0.post_attention_layernorm.weight",
    ]);
    assert.deepEqual(
      expectedTensors(plain).find((t) => t.name.endsWith("gate_up_proj.weight"))?.shape,
      [256, 64],
    );
    const long = {
      ...phi3,
      max_position_embeddings: 131072,
      original_max_position_embeddings: 4096,
      rope_scaling: { type: "longrope", short_factor: Array(8).fill(1.5), long_factor: Array(8).fill(9) },
    };
    const s = parseHfConfig(long, F).ropeScaling;
    assert.equal(s?.type, "longrope");
    if (s?.type !== "longrope") return;
    assert.equal(s.originalMaxPositionEmbeddings, 4096);
    // √(1 + ln(131072 / 4096) / ln 4096), as transformers computes it.
    assert.ok(Math.abs(s.attentionFactor - Math.sqrt(1 + Math.log(32) / Math.log(4096))) < 1e-12);
    assert.throws(
      () => parseHfConfig({ ...long, rope_scaling: { ...long.rope_scaling, short_factor: [1, 2] } }, F),
      /rope_scaling\.short_factor has 2 entries, but 16 rotated dims a head need 8/,
    );
    assert.throws(
      () => parseHfConfig({ ...long, original_max_position_embeddings: undefined }, F),
      /rope_scaling of type "longrope" needs "factor"/,
    );
    // Phi-4-mini: RoPE over the first 3/4 of each head, its LongRoPE factors one per rotated pair.
    const partial = parseHfConfig(
      {
        ...long,
        partial_rotary_factor: 0.75,
        rope_scaling: { ...long.rope_scaling, short_factor: Array(6).fill(1), long_factor: Array(6).fill(2) },
      },
      F,
    );
    assert.equal(partial.rotaryDim, 12);
    assert.match(describeFamily(partial), /RoPE on 12 of 16 dims a head/);
    assert.throws(
      () => parseHfConfig({ ...long, partial_rotary_factor: 0.75 }, F),
      /rope_scaling\.short_factor has 8 entries, but 12 rotated dims a head need 6/,
    );
    assert.equal(
      parseHfConfig({ ...phi3, rope_parameters: { rope_type: "default", partial_rotary_factor: 0.5 } }, F)
        .rotaryDim,
      8,
    );
    assert.throws(
      () => parseHfConfig({ ...phi3, partial_rotary_factor: 0.7 }, F),
      /partial_rotary_factor 0\.7 × head_dim 16 = 11\.2 is not an even number of dims/,
    );
    assert.throws(
      () => parseHfConfig({ ...qwen3, partial_rotary_factor: 0.5 }, F),
      /partial_rotary_factor 0\.5 is not supported for qwen3 \(phi3's, glm4's and glm4_moe's attention apply it\)/,
    );
  });

  test("longrope tables: short factors below the original context, long from it, scaled by the attention factor", () => {
    const c = parseHfConfig(
      {
        ...phi3,
        max_position_embeddings: 64,
        original_max_position_embeddings: 16,
        rope_scaling: { type: "longrope", short_factor: Array(8).fill(2), long_factor: Array(8).fill(4) },
      },
      F,
    );
    const t = buildRopeTables(c, 64);
    const mag = Math.sqrt(1 + Math.log(4) / Math.log(16));
    const expect = (pos: number, factor: number) => mag * Math.cos(pos / factor); // frequency 0: 1 / factor
    assert.ok(Math.abs(t.cos[15 * t.half]! - expect(15, 2)) < 1e-6);
    assert.ok(Math.abs(t.cos[16 * t.half]! - expect(16, 4)) < 1e-6);
  });

  test("mixtral: every layer a mixture, renormalised top-k, transformers' defaults", () => {
    const c = parseHfConfig(mixtral, F);
    assert.deepEqual(c.moe, {
      numExperts: 8,
      topK: 2,
      expertIntermediateSize: 128,
      normalizeTopK: true,
      sparseLayers: [true, true],
    });
    assert.equal(c.ropeTheta, 1e6);
    const n = names(c);
    assert.ok(n.includes("model.layers.1.block_sparse_moe.gate.weight"));
    assert.ok(n.includes("model.layers.1.block_sparse_moe.experts.7.w2.weight"));
    assert.ok(!n.some((x) => x.includes("mlp.")));
    assert.throws(
      () => parseHfConfig({ ...mixtral, num_local_experts: 2, num_experts_per_tok: 3 }, F),
      /num_experts_per_tok \(3\) exceeds the number of experts \(2\)/,
    );
  });

  test("qwen3_moe: dense layers from mlp_only_layers and decoder_sparse_step; norm_topk_prob", () => {
    const c = parseHfConfig(
      { ...qwen3Moe, num_experts: 4, num_experts_per_tok: 2, decoder_sparse_step: 2, mlp_only_layers: [3] },
      F,
    );
    assert.equal(c.qkNorm, true);
    assert.deepEqual(c.moe?.sparseLayers, [false, true, false, false]);
    assert.equal(c.moe?.normalizeTopK, false);
    assert.equal(c.moe?.expertIntermediateSize, 768);
    const n = names(c);
    assert.ok(n.includes("model.layers.0.mlp.gate_proj.weight"));
    assert.ok(n.includes("model.layers.1.mlp.experts.3.down_proj.weight"));
    assert.ok(n.includes("model.layers.1.mlp.gate.weight"));
    assert.equal(parseHfConfig({ ...qwen3Moe, norm_topk_prob: true }, F).moe?.normalizeTopK, true);
    assert.equal(parseHfConfig({ ...qwen3Moe, num_experts: 0 }, F).moe, undefined);
    assert.throws(
      () => parseHfConfig({ ...qwen3Moe, shared_expert_intermediate_size: 512 }, F),
      /shared_expert_intermediate_size/,
    );
    assert.throws(
      () => parseHfConfig({ ...qwen3Moe, mlp_only_layers: [9] }, F),
      /mlp_only_layers names layer 9/,
    );
  });

  test("granite: its four multipliers; scores × attention_multiplier (1 when absent, not 1/√head_dim)", () => {
    const c = parseHfConfig(granite, F);
    assert.equal(c.architecture, "granite");
    assert.equal(c.embedMultiplier, 12);
    assert.equal(c.residualMultiplier, 0.22);
    assert.equal(c.logitsDivisor, 8);
    assert.equal(c.attentionScale, 0.015625);
    assert.equal(c.tieWordEmbeddings, true);
    assert.match(describeFamily(c), /embeddings × 12, block outputs × 0\.22, logits ÷ 8/);
    // transformers' GraniteConfig defaults every multiplier to 1, the attention scale included.
    const bare = parseHfConfig({ ...common, model_type: "granite" }, F);
    assert.equal(bare.attentionScale, 1);
    assert.equal(bare.embedMultiplier, undefined, "a multiplier of 1 leaves no op");
    assert.equal(bare.residualMultiplier, undefined);
    assert.equal(bare.logitsDivisor, undefined);
    assert.equal(bare.tieWordEmbeddings, false);
    assert.deepEqual(names(bare), names(parseHfConfig({ ...common, model_type: "llama" }, F)));
    assert.throws(() => parseHfConfig({ ...granite, logits_scaling: 0 }, F), /logits_scaling/);
    assert.throws(() => parseHfConfig({ ...granite, attention_bias: true }, F), /attention_bias=true/);
    assert.throws(() => parseHfConfig({ ...granite, mlp_bias: true }, F), /mlp_bias=true/);
    assert.throws(
      () => parseHfConfig({ ...granite, model_type: "granitemoe" }, F),
      /"granitemoe" from a Hugging Face directory is not supported .* a GGUF file of it \(llama\.cpp's granitemoe\) is/,
    );
  });

  test("smollm3: no_rope_layers, or every no_rope_layer_interval-th layer without RoPE; tied by default", () => {
    const smol = { ...common, model_type: "smollm3", num_hidden_layers: 8 };
    const c = parseHfConfig(smol, F);
    assert.deepEqual(c.ropeLayers, [true, true, true, false, true, true, true, false]);
    assert.equal(c.tieWordEmbeddings, true);
    assert.equal(c.ropeTheta, 2e6);
    assert.match(describeFamily(c), /no RoPE on layers 3, 7 of 8/);
    const given = parseHfConfig({ ...smol, no_rope_layers: [1, 0, 1, 1, 1, 1, 1, 1] }, F);
    assert.deepEqual(given.ropeLayers, [true, false, true, true, true, true, true, true]);
    assert.deepEqual(parseHfConfig({ ...smol, no_rope_layer_interval: 3 }, F).ropeLayers?.indexOf(false), 2);
    assert.equal(parseHfConfig({ ...smol, no_rope_layers: Array(8).fill(1) }, F).ropeLayers, undefined);
    assert.throws(
      () => parseHfConfig({ ...smol, no_rope_layers: [1, 0] }, F),
      /no_rope_layers has 2 entries for 8 layers/,
    );
    assert.throws(() => parseHfConfig({ ...smol, use_sliding_window: true }, F), /use_sliding_window=true/);
  });

  test("olmo2: norms after the blocks only and whole-projection q/k norms, as its tensors show", () => {
    const c = parseHfConfig({ ...common, model_type: "olmo2" }, F);
    assert.equal(c.postNormsOnly, true);
    assert.equal(c.qkNorm, true);
    assert.equal(c.qkNormFull, true);
    assert.equal(c.rmsNormEps, 1e-5);
    assert.equal(c.tieWordEmbeddings, false);
    const t = expectedTensors(c);
    const n = t.map((x) => x.name);
    assert.ok(!n.some((x) => x.endsWith("input_layernorm.weight")), "no norm before attention");
    assert.ok(!n.some((x) => x.endsWith("pre_feedforward_layernorm.weight")), "no norm before the FFN");
    assert.ok(n.includes("model.layers.1.post_feedforward_layernorm.weight"));
    assert.deepEqual(t.find((x) => x.name === "model.layers.0.self_attn.q_norm.weight")?.shape, [64]);
    assert.deepEqual(t.find((x) => x.name === "model.layers.0.self_attn.k_norm.weight")?.shape, [32]);
    assert.match(describeFamily(c), /q\/k norms over the whole projections, norms after each block only/);
    assert.throws(
      () => parseHfConfig({ ...common, model_type: "olmo2", attention_bias: true }, F),
      /attention_bias=true/,
    );
  });

  test("ernie4_5: ERNIE-4.5-0.3B's config.json (transformers' defaults), biases and rescaled positions refused", () => {
    // As the 0.3B checkpoint writes it, with the fields its remote code adds at their neutral values.
    const ernie = {
      architectures: ["Ernie4_5ForCausalLM"],
      model_type: "ernie4_5",
      vocab_size: 103424,
      hidden_size: 1024,
      intermediate_size: 3072,
      num_hidden_layers: 18,
      num_attention_heads: 16,
      num_key_value_heads: 2,
      max_position_embeddings: 131072,
      rope_theta: 500000,
      use_bias: false,
      compression_ratio: 1.0,
      torch_dtype: "bfloat16",
    };
    const c = parseHfConfig(ernie, F);
    assert.equal(c.architecture, "ernie4_5");
    assert.equal(c.headDim, 128, "head_dim 128, not hidden / heads = 64");
    assert.equal(c.tieWordEmbeddings, true);
    assert.equal(c.rmsNormEps, 1e-5);
    assert.equal(c.ropeTheta, 500000);
    assert.equal(c.attentionBias, false);
    assert.deepEqual(
      expectedTensors(c).find((t) => t.name.endsWith("0.self_attn.q_proj.weight"))?.shape,
      [2048, 1024],
    );
    assert.ok(!names(c).includes("lm_head.weight"), "tied: no lm_head");
    assert.throws(
      () => parseHfConfig({ ...ernie, use_bias: true }, F),
      /ernie4_5 use_bias=true .* not supported/,
    );
    assert.throws(
      () => parseHfConfig({ ...ernie, compression_ratio: 2 }, F),
      /ernie4_5 compression_ratio 2 .* not supported/,
    );
  });

  test("ernie4_5_moe: ERNIE-4.5-21B-A3B's routing, shared experts and mixture layers", () => {
    const moe = {
      model_type: "ernie4_5_moe",
      vocab_size: 103424,
      hidden_size: 2560,
      intermediate_size: 12288,
      num_hidden_layers: 28,
      num_attention_heads: 20,
      num_key_value_heads: 4,
      max_position_embeddings: 131072,
      rope_theta: 500000,
      moe_num_experts: 64,
      moe_k: 6,
      moe_intermediate_size: 1536,
      moe_num_shared_experts: 2,
      moe_layer_start_index: 1,
      moe_layer_end_index: 27,
      moe_layer_interval: 1,
      use_bias: false,
    };
    const c = parseHfConfig(moe, F);
    assert.equal(c.architecture, "ernie4_5_moe");
    assert.equal(c.headDim, 128);
    assert.equal(c.tieWordEmbeddings, true);
    assert.deepEqual(c.moe, {
      numExperts: 64,
      topK: 6,
      expertIntermediateSize: 1536,
      normalizeTopK: true,
      sparseLayers: Array.from({ length: 28 }, (_, l) => l >= 1),
      selectionBias: true,
      sharedExpertSize: 3072,
    });
    const t = expectedTensors(c);
    const shape = (n: string) => t.find((x) => x.name === n)?.shape;
    assert.deepEqual(shape("model.layers.1.mlp.moe_statics.e_score_correction_bias"), [1, 64]);
    assert.deepEqual(shape("model.layers.1.mlp.shared_experts.gate_proj.weight"), [3072, 2560]);
    assert.deepEqual(shape("model.layers.0.mlp.gate_proj.weight"), [12288, 2560], "layer 0 is dense");
    assert.match(describeFamily(c), /64 experts \(top-6, renormalised\) on 27 of 28 layers/);
    // Every other layer from 3 up to 9; no shared expert.
    const every = parseHfConfig(
      {
        ...moe,
        num_hidden_layers: 12,
        moe_layer_start_index: 3,
        moe_layer_end_index: 9,
        moe_layer_interval: 2,
        moe_num_shared_experts: 0,
      },
      F,
    ).moe!;
    assert.deepEqual(
      every.sparseLayers.flatMap((s, l) => (s ? [l] : [])),
      [3, 5, 7, 9],
    );
    assert.equal(every.sharedExpertSize, undefined);
    assert.throws(
      () => parseHfConfig({ ...moe, moe_k: 65 }, F),
      /moe_k \(65\) exceeds the number of experts \(64\)/,
    );
    assert.throws(() => parseHfConfig({ ...moe, use_bias: true }, F), /ernie4_5_moe use_bias=true/);
  });

  test("olmo3: Olmo-3-7B's window layers (three of four, plain RoPE) and YaRN on the full ones", () => {
    // As the 7B's config.json writes it (transformers 4.57: a flat rope_scaling, layer_types).
    const olmo3 = {
      model_type: "olmo3",
      vocab_size: 100278,
      hidden_size: 4096,
      intermediate_size: 11008,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 32,
      max_position_embeddings: 65536,
      rms_norm_eps: 1e-6,
      rope_theta: 500000,
      sliding_window: 4096,
      layer_types: Array.from({ length: 32 }, (_, l) =>
        (l + 1) % 4 === 0 ? "full_attention" : "sliding_attention",
      ),
      rope_scaling: {
        rope_type: "yarn",
        factor: 8.0,
        original_max_position_embeddings: 8192,
        beta_fast: 32.0,
        beta_slow: 1.0,
        attention_factor: 1.2079441541679836,
      },
    };
    const c = parseHfConfig(olmo3, F);
    assert.equal(c.architecture, "olmo3");
    assert.equal(c.postNormsOnly, true);
    assert.equal(c.qkNormFull, true);
    assert.equal(c.slidingWindow, 4096);
    assert.deepEqual(
      c.slidingLayers?.flatMap((s, l) => (s ? [] : [l])),
      [3, 7, 11, 15, 19, 23, 27, 31],
    );
    assert.equal(c.localRopeTheta, 500000, "window layers: the model's base, unscaled");
    assert.equal(c.ropeScaling?.type, "yarn");
    assert.match(
      describeFamily(c),
      /sliding window 4096 on 24 of 32 layers, window layers' RoPE base 500000/,
    );
    // transformers 5's form: rope_parameters per layer type, the window layers' base of their own.
    const { rope_theta: _, rope_scaling, layer_types: __, ...rest } = olmo3;
    const perType = parseHfConfig(
      {
        ...rest,
        rope_parameters: {
          sliding_attention: { rope_type: "default", rope_theta: 250000 },
          full_attention: { ...rope_scaling, rope_theta: 500000 },
        },
      },
      F,
    );
    assert.deepEqual([perType.ropeTheta, perType.localRopeTheta], [500000, 250000]);
    assert.deepEqual(perType.ropeScaling, c.ropeScaling);
    assert.deepEqual(perType.slidingLayers, c.slidingLayers, "layer_types default: every fourth layer full");
    assert.throws(
      () =>
        parseHfConfig(
          { ...rest, rope_parameters: { sliding_attention: { rope_type: "linear", factor: 2 } } },
          F,
        ),
      /rope_parameters\.sliding_attention of type "linear" is not supported/,
    );
    assert.throws(
      () => parseHfConfig({ ...olmo3, layer_types: ["full_attention"] }, F),
      /layer_types has 1 entries for 32 layers/,
    );
  });

  test("olmoe: OLMoE-1B-7B's experts (64, top-8, not renormalised) and whole-projection q/k norms", () => {
    const olmoe = {
      model_type: "olmoe",
      vocab_size: 50304,
      hidden_size: 2048,
      intermediate_size: 1024,
      num_hidden_layers: 16,
      num_attention_heads: 16,
      num_key_value_heads: 16,
      num_experts: 64,
      num_experts_per_tok: 8,
      norm_topk_prob: false,
      clip_qkv: null,
      max_position_embeddings: 4096,
      rope_theta: 10000,
    };
    const c = parseHfConfig(olmoe, F);
    assert.equal(c.architecture, "olmoe");
    assert.deepEqual([c.qkNorm, c.qkNormFull, c.postNormsOnly], [true, true, undefined]);
    assert.deepEqual(
      [c.moe?.numExperts, c.moe?.topK, c.moe?.expertIntermediateSize, c.moe?.normalizeTopK],
      [64, 8, 1024, false],
    );
    assert.deepEqual(
      expectedTensors(c).find((t) => t.name === "model.layers.0.self_attn.q_norm.weight")?.shape,
      [2048],
    );
    assert.throws(() => parseHfConfig({ ...olmoe, clip_qkv: 8 }, F), /olmoe clip_qkv 8 .* not supported/);
  });

  test("gpt_oss: gpt-oss-20b's config.json (sinks, biases, alternating windows, untruncated YaRN, 32 clamped experts)", () => {
    const gptOss = {
      model_type: "gpt_oss",
      vocab_size: 201088,
      hidden_size: 2880,
      intermediate_size: 2880,
      num_hidden_layers: 24,
      num_attention_heads: 64,
      num_key_value_heads: 8,
      head_dim: 64,
      num_local_experts: 32,
      num_experts_per_tok: 4,
      experts_per_token: 4,
      sliding_window: 128,
      attention_bias: true,
      swiglu_limit: 7.0,
      max_position_embeddings: 131072,
      rms_norm_eps: 1e-5,
      rope_theta: 150000,
      rope_scaling: {
        beta_fast: 32.0,
        beta_slow: 1.0,
        factor: 32.0,
        original_max_position_embeddings: 4096,
        rope_type: "yarn",
        truncate: false,
      },
      tie_word_embeddings: false,
      quantization_config: { quant_method: "mxfp4", modules_to_not_convert: ["model.layers.*.self_attn"] },
    };
    const c = parseHfConfig(gptOss, F);
    assert.deepEqual(
      [c.architecture, c.attentionBias, c.outputBias, c.attnSinks, c.slidingWindow],
      ["gpt_oss", true, true, true, 128],
    );
    assert.deepEqual(
      c.slidingLayers,
      Array.from({ length: 24 }, (_, l) => l % 2 === 0),
    );
    assert.equal(c.ropeScaling?.type === "yarn" && c.ropeScaling.truncate, false);
    assert.deepEqual(c.moe, {
      numExperts: 32,
      topK: 4,
      expertIntermediateSize: 2880,
      normalizeTopK: true,
      sparseLayers: Array.from({ length: 24 }, () => true),
      routerBias: true,
      expertBias: true,
      swigluClamp: { alpha: 1.702, limit: 7 },
    });
    assert.match(
      describeFamily(c),
      /q\/k\/v\/o biases, attention sinks, .*router and expert biases, SwiGLU clamped at 7/,
    );
    const names = expectedTensors(c).map((t) => t.name);
    assert.ok(
      names.includes("model.layers.3.self_attn.sinks") && names.includes("model.layers.3.mlp.router.bias"),
    );
    assert.throws(
      () => parseHfConfig({ ...gptOss, layer_types: ["chunked_attention"] }, F),
      /layer_types has 1 entries for 24 layers/,
    );
    assert.throws(
      () => parseHfConfig({ ...gptOss, num_hidden_layers: 1, layer_types: ["chunked_attention"] }, F),
      /layer_types\[0\] = "chunked_attention" is not supported/,
    );
  });

  test("glm4: GLM-4-9B-0414's shape (q/k/v biases, RoPE on half a head by default, norms around each block)", () => {
    const glm4 = {
      model_type: "glm4",
      vocab_size: 151552,
      hidden_size: 4096,
      intermediate_size: 13696,
      num_hidden_layers: 40,
      num_attention_heads: 32,
      num_key_value_heads: 2,
      head_dim: 128,
      attention_bias: true,
      max_position_embeddings: 32768,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: false,
      pad_token_id: 151329,
      eos_token_id: [151329, 151336, 151338],
    };
    const c = parseHfConfig(glm4, F);
    assert.deepEqual(
      [
        c.architecture,
        c.attentionBias,
        c.outputBias,
        c.fusedGateUp,
        c.fusedProjections,
        c.postNorms,
        c.rotaryDim,
      ],
      ["glm4", true, undefined, true, undefined, true, 64],
    );
    assert.deepEqual(c.eosTokenIds, [151329, 151336, 151338]);
    assert.equal(parseHfConfig({ ...glm4, partial_rotary_factor: 0.25 }, F).rotaryDim, 32);
    const names = expectedTensors(c).map((t) => t.name);
    for (const n of ["post_self_attn_layernorm", "post_attention_layernorm", "post_mlp_layernorm"])
      assert.ok(names.includes(`model.layers.0.${n}.weight`), n);
    assert.ok(names.includes("model.layers.0.mlp.gate_up_proj.weight"));
    assert.ok(!names.includes("model.layers.0.pre_feedforward_layernorm.weight"));
    assert.match(
      describeFamily(c),
      /q\/k\/v biases, .*RoPE on 64 of 128 dims a head, .*post-attention and post-FFN norms/,
    );
  });

  test("exaone4: EXAONE-4.0-32B's window pattern (letters, the last layer global, globals without RoPE) and the 1.2B's none", () => {
    const big = {
      architectures: ["Exaone4ForCausalLM"],
      model_type: "exaone4",
      vocab_size: 102400,
      hidden_size: 5120,
      intermediate_size: 27392,
      num_hidden_layers: 64,
      num_attention_heads: 40,
      num_key_value_heads: 8,
      head_dim: 128,
      max_position_embeddings: 131072,
      rms_norm_eps: 1e-5,
      rope_theta: 1000000,
      rope_scaling: {
        factor: 16.0,
        high_freq_factor: 4.0,
        low_freq_factor: 1.0,
        original_max_position_embeddings: 8192,
        rope_type: "llama3",
      },
      sliding_window: 4096,
      sliding_window_pattern: "LLLG",
      tie_word_embeddings: false,
    };
    const c = parseHfConfig(big, F);
    assert.deepEqual(
      [c.qkNorm, c.qkNormFull, c.postNormsOnly, c.slidingWindow],
      [true, undefined, true, 4096],
    );
    assert.deepEqual(c.slidingLayers!.slice(0, 8), [true, true, true, false, true, true, true, false]);
    assert.deepEqual(c.ropeLayers, c.slidingLayers);
    // Letters: the last layer is global even where the pattern would make it a window layer.
    const odd = parseHfConfig({ ...big, num_hidden_layers: 6 }, F);
    assert.deepEqual(odd.slidingLayers, [true, true, true, false, true, false]);
    // A period, and layer_types, as transformers derives and writes them.
    assert.deepEqual(
      parseHfConfig({ ...big, num_hidden_layers: 6, sliding_window_pattern: 3 }, F).slidingLayers,
      [true, true, false, true, true, false],
    );
    const types = ["sliding_attention", "full_attention"];
    assert.deepEqual(parseHfConfig({ ...big, num_hidden_layers: 2, layer_types: types }, F).slidingLayers, [
      true,
      false,
    ]);
    const small = parseHfConfig(
      { ...big, num_hidden_layers: 30, sliding_window: null, sliding_window_pattern: null },
      F,
    );
    assert.deepEqual(
      [small.slidingWindow, small.slidingLayers, small.ropeLayers],
      [null, undefined, undefined],
    );
    assert.throws(
      () => parseHfConfig({ ...big, sliding_window_pattern: "LLXG" }, F),
      /must be letters L and G/,
    );
  });

  test("seed_oss: Seed-OSS-36B's config (q/k/v biases, o_proj's by its own flag, head_dim 128 beside 5120/80)", () => {
    const seed = {
      architectures: ["SeedOssForCausalLM"],
      model_type: "seed_oss",
      vocab_size: 155136,
      hidden_size: 5120,
      intermediate_size: 27648,
      num_hidden_layers: 64,
      num_attention_heads: 80,
      num_key_value_heads: 8,
      head_dim: 128,
      attention_bias: true,
      attention_out_bias: false,
      mlp_bias: false,
      attention_dropout: 0.1,
      residual_dropout: 0.1,
      max_position_embeddings: 524288,
      rms_norm_eps: 1e-6,
      rope_theta: 10000000.0,
      rope_scaling: { rope_type: "default" },
      tie_word_embeddings: false,
      bos_token_id: 0,
      eos_token_id: 2,
    };
    const c = parseHfConfig(seed, F);
    assert.deepEqual(
      [c.architecture, c.attentionBias, c.outputBias, c.headDim, c.numKvHeads, c.ropeTheta],
      ["seed_oss", true, undefined, 128, 8, 1e7],
    );
    assert.equal(parseHfConfig({ ...seed, attention_out_bias: true }, F).outputBias, true);
    assert.ok(expectedTensors(c).some((t) => t.name === "model.layers.0.self_attn.q_proj.bias"));
    assert.throws(() => parseHfConfig({ ...seed, mlp_bias: true }, F), /mlp_bias=true is not supported/);
  });

  test("glm4_moe: GLM-4.5-Air's config (sigmoid routing with a correction bias, x1 scaling, first layer dense, half-head RoPE)", () => {
    const air = {
      architectures: ["Glm4MoeForCausalLM"],
      model_type: "glm4_moe",
      vocab_size: 151552,
      hidden_size: 4096,
      intermediate_size: 10944,
      num_hidden_layers: 46,
      num_attention_heads: 96,
      num_key_value_heads: 8,
      head_dim: 128,
      partial_rotary_factor: 0.5,
      attention_bias: true,
      use_qk_norm: false,
      first_k_dense_replace: 1,
      n_routed_experts: 128,
      n_shared_experts: 1,
      num_experts_per_tok: 8,
      moe_intermediate_size: 1408,
      norm_topk_prob: true,
      routed_scaling_factor: 1.0,
      n_group: 1,
      topk_group: 1,
      num_nextn_predict_layers: 1,
      max_position_embeddings: 131072,
      rms_norm_eps: 1e-5,
      rope_theta: 1000000,
      tie_word_embeddings: false,
      eos_token_id: [151329, 151336, 151338],
    };
    const c = parseHfConfig(air, F);
    const moe = c.moe!;
    assert.deepEqual(
      [c.architecture, c.attentionBias, c.qkNorm, c.rotaryDim, c.headDim, c.numLayers],
      ["glm4_moe", true, undefined, 64, 128, 46],
    );
    assert.deepEqual(
      [moe.numExperts, moe.topK, moe.expertIntermediateSize, moe.sharedExpertSize, moe.normalizeTopK],
      [128, 8, 1408, 1408, true],
    );
    assert.deepEqual([moe.sigmoidScores, moe.selectionBias, moe.routedScale], [true, true, undefined]);
    assert.deepEqual(moe.sparseLayers.slice(0, 3), [false, true, true]);
    // GLM-4.5 (355B): q/k norms and 2.5x routed weights.
    const big = parseHfConfig(
      { ...air, use_qk_norm: true, routed_scaling_factor: 2.5, first_k_dense_replace: 3 },
      F,
    );
    assert.deepEqual([big.qkNorm, big.moe!.routedScale, big.moe!.sparseLayers.indexOf(true)], [true, 2.5, 3]);
    const names = expectedTensors(c).map((t) => t.name);
    assert.ok(names.includes("model.layers.1.mlp.gate.e_score_correction_bias"));
    assert.ok(names.includes("model.layers.1.mlp.shared_experts.down_proj.weight"));
    assert.ok(names.includes("model.layers.0.mlp.gate_proj.weight"));
    assert.ok(!names.some((n) => n.startsWith("model.layers.46.")), "the MTP layer is not run");
    assert.match(describeFamily(c), /sigmoid expert scores, experts chosen with a per-expert bias/);
    assert.throws(
      () => parseHfConfig({ ...air, n_group: 8, topk_group: 4 }, F),
      /topk_group 4 of n_group 8 \(experts chosen within groups\) is not supported/,
    );
  });

  test("qwen2_moe: Qwen1.5-MoE-A2.7B's config (60 experts top-4 unrenormalised, a gated shared expert, q/k/v biases)", () => {
    const qwen2Moe = {
      model_type: "qwen2_moe",
      vocab_size: 151936,
      hidden_size: 2048,
      intermediate_size: 5632,
      num_hidden_layers: 24,
      num_attention_heads: 16,
      num_key_value_heads: 16,
      max_position_embeddings: 8192,
      rope_theta: 1000000,
      num_experts: 60,
      num_experts_per_tok: 4,
      moe_intermediate_size: 1408,
      shared_expert_intermediate_size: 5632,
      norm_topk_prob: false,
      decoder_sparse_step: 1,
      use_sliding_window: false,
      sliding_window: 32768,
    };
    const c = parseHfConfig(qwen2Moe, F);
    assert.deepEqual([c.architecture, c.attentionBias, c.slidingWindow], ["qwen2_moe", true, null]);
    assert.deepEqual(
      [c.moe?.numExperts, c.moe?.topK, c.moe?.expertIntermediateSize, c.moe?.normalizeTopK],
      [60, 4, 1408, false],
    );
    assert.deepEqual([c.moe?.sharedExpertSize, c.moe?.sharedExpertGate], [5632, true]);
    const gate = expectedTensors(c).find((t) => t.name === "model.layers.0.mlp.shared_expert_gate.weight");
    assert.deepEqual(gate?.shape, [1, 2048]);
    assert.match(describeFamily(c), /a shared expert 5632 wide, sigmoid-gated/);
    const dense = parseHfConfig({ ...qwen2Moe, mlp_only_layers: [0] }, F);
    assert.equal(dense.moe?.sparseLayers[0], false);
  });
});
