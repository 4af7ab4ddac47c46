import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { extractVocab } from "../../src/convert/gguf-vocab.js";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { loadGgufTokenizer } from "../../src/model/gguf-loader.js";
import { loadModel } from "../../src/model/load.js";
import { toFloat32 } from "../../src/model/tensor.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { readGguf } from "./gguf-reader.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-to-gguf-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const stories = sharedDataPath("models", "stories260K");

interface Llama3Scaling {
  rope_type: "llama3";
  factor: number;
  low_freq_factor: number;
  high_freq_factor: number;
  original_max_position_embeddings: number;
}

/**
 * Llama 3's RoPE frequency factors, from the rule's definition (Meta's apply_scaling): a dimension
 * whose wavelength 2π/freq is shorter than original_max_position_embeddings / high_freq_factor
 * keeps its frequency, one longer than original_max_position_embeddings / low_freq_factor is
 * slowed by `factor`, and in between the frequency is interpolated between freq/factor and freq
 * by smooth = (original_max_position_embeddings / wavelength − low) / (high − low). rope_freqs
 * holds what each original frequency is divided by.
 */
function llama3Factors(theta: number, headDim: number, s: Llama3Scaling): number[] {
  const out: number[] = [];
  for (let i = 0; i < headDim / 2; i++) {
    const freq = theta ** (-(2 * i) / headDim);
    const wavelength = (2 * Math.PI) / freq;
    let scaled: number;
    if (wavelength < s.original_max_position_embeddings / s.high_freq_factor) scaled = freq;
    else if (wavelength > s.original_max_position_embeddings / s.low_freq_factor) scaled = freq / s.factor;
    else {
      const smooth =
        (s.original_max_position_embeddings / wavelength - s.low_freq_factor) /
        (s.high_freq_factor - s.low_freq_factor);
      scaled = (1 - smooth) * (freq / s.factor) + smooth * freq;
    }
    out.push(freq / scaled);
  }
  return out;
}

async function convert(spec: string, name: string) {
  const model = await loadModel(spec);
  const file = path.join(tmp, `${name}.gguf`);
  const summary = modelToGguf(model, file);
  return { model, summary, g: readGguf(file) };
}

describe("GGUF export of stories260K", () => {
  it("writes Llama metadata from the config and a SentencePiece vocabulary", async () => {
    const { g, summary } = await convert(path.join(stories, "hf"), "s-hf");
    assert.equal(summary.architecture, "llama");
    const m = g.metadata;
    const expected: Record<string, unknown> = {
      "general.architecture": "llama",
      "general.file_type": 0,
      "llama.vocab_size": 512,
      "llama.context_length": 512,
      "llama.embedding_length": 64,
      "llama.block_count": 5,
      "llama.feed_forward_length": 172,
      "llama.attention.head_count": 8,
      "llama.attention.head_count_kv": 4,
      "llama.attention.key_length": 8,
      "llama.attention.value_length": 8,
      "llama.attention.layer_norm_rms_epsilon": Math.fround(1e-5),
      "llama.rope.freq_base": 10000,
      "llama.rope.dimension_count": 8,
      "tokenizer.ggml.model": "llama",
      "tokenizer.ggml.bos_token_id": 1,
      "tokenizer.ggml.eos_token_id": 2,
      "tokenizer.ggml.unknown_token_id": 0,
      "tokenizer.ggml.add_bos_token": true,
      "tokenizer.ggml.add_eos_token": false,
      "tokenizer.ggml.add_space_prefix": true,
    };
    for (const [k, v] of Object.entries(expected)) assert.equal(m.get(k), v, k);
    assert.equal(m.has("llama.rope.scaling.type"), false);
    const tokens = m.get("tokenizer.ggml.tokens") as string[];
    const types = m.get("tokenizer.ggml.token_type") as number[];
    assert.equal(tokens.length, 512);
    assert.deepEqual(tokens.slice(0, 4), ["<unk>", "<s>", "</s>", "<0x00>"]);
    assert.deepEqual(types.slice(0, 4), [2, 3, 3, 6]);
    assert.equal((m.get("tokenizer.ggml.scores") as number[]).length, 512);
    // 2 norms + 7 matrices per layer, embedding, final norm; tied, so no output.weight.
    assert.equal(g.tensors.size, 5 * 9 + 2);
    assert.equal(g.tensors.has("output.weight"), false);
    assert.deepEqual(g.tensors.get("token_embd.weight")!.shape, [512, 64]);
    assert.deepEqual(g.tensors.get("blk.0.attn_k.weight")!.shape, [32, 64]);
    assert.deepEqual(g.tensors.get("blk.4.ffn_down.weight")!.shape, [64, 172]);
    assert.deepEqual(g.tensors.get("output_norm.weight")!.shape, [64]);
  });

  it("q/k rows are Meta's interleaved layout again: equal to the raw wq/wk of the llama2.c file", async () => {
    const { g } = await convert(path.join(stories, "stories260K.bin"), "s-bin");
    const raw = readFileSync(path.join(stories, "stories260K.bin"));
    // Legacy llama2.c layout: 7-int header, embedding [512, 64], rms_att [5, 64], wq [5, 64, 64], wk [5, 32, 64].
    const floats = (at: number, n: number) => raw.subarray(28 + at * 4, 28 + (at + n) * 4);
    const wq = 512 * 64 + 5 * 64;
    const wk = wq + 5 * 64 * 64;
    for (let l = 0; l < 5; l++) {
      assert.deepEqual(
        Buffer.from(g.tensors.get(`blk.${l}.attn_q.weight`)!.data),
        floats(wq + l * 4096, 4096),
      );
      assert.deepEqual(
        Buffer.from(g.tensors.get(`blk.${l}.attn_k.weight`)!.data),
        floats(wk + l * 2048, 2048),
      );
    }
    // The llama2.c vocabulary: real scores, "▁" for spaces.
    const tokens = g.metadata.get("tokenizer.ggml.tokens") as string[];
    assert.ok(tokens.includes("▁the"));
  });

  it("the Hugging Face directory and the .bin give the same tensors", async () => {
    const a = (await convert(path.join(stories, "hf"), "s-hf2")).g;
    const b = (await convert(path.join(stories, "stories260K.bin"), "s-bin2")).g;
    assert.deepEqual([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
    for (const [name, t] of a.tensors) {
      assert.deepEqual(Buffer.from(t.data), Buffer.from(b.tensors.get(name)!.data), name);
    }
  });
});

describe("GGUF export of other checkpoint kinds", () => {
  it("bf16 weights stay bf16, norms become f32, an untied head is output.weight", async () => {
    const { g } = await convert(writeTinyModel(path.join(tmp, "gqa"), "llama-gqa").dir, "gqa");
    assert.equal(g.metadata.get("general.file_type"), 32);
    assert.equal(g.tensors.get("blk.0.ffn_up.weight")!.type, 30);
    assert.equal(g.tensors.get("blk.0.attn_norm.weight")!.type, 0);
    assert.equal(g.metadata.get("tokenizer.ggml.model"), "gpt2");
    assert.equal(g.metadata.get("tokenizer.ggml.pre"), "gpt-2");
    const mha = (await convert(writeTinyModel(path.join(tmp, "mha"), "llama-mha").dir, "mha")).g;
    assert.ok(mha.tensors.has("output.weight"));
  });

  it("a tokenizer that splits every digit before GPT-2's words (SmolLM's) is written as llama.cpp's smollm", async () => {
    const { dir } = writeTinyModel(path.join(tmp, "digits"), "llama-gqa");
    const tokFile = path.join(dir, "tokenizer.json");
    const tok = JSON.parse(readFileSync(tokFile, "utf8")) as Record<string, unknown>;
    tok.pre_tokenizer = {
      type: "Sequence",
      pretokenizers: [{ type: "Digits", individual_digits: true }, tok.pre_tokenizer],
    };
    // Merges that join digits, so the split shows in the ids: "1 2", then "12 3", on the ids of
    // bytes 0xF8 and 0xF9 (never in UTF-8 text) to keep the vocabulary's size.
    const model = tok.model as { vocab: Record<string, number>; merges: string[][] };
    const next = 0xf8;
    delete model.vocab["\u00f8"];
    delete model.vocab["\u00f9"];
    model.vocab["12"] = next;
    model.vocab["123"] = next + 1;
    model.merges = [
      ["1", "2"],
      ["12", "3"],
    ];
    writeFileSync(tokFile, JSON.stringify(tok));
    const { g, model: loaded } = await convert(dir, "digits");
    assert.equal(g.metadata.get("tokenizer.ggml.pre"), "smollm");
    const back = loadGgufTokenizer(path.join(tmp, "digits.gguf"));
    for (const text of ["1234 and 12", "a123b"]) {
      const want = loaded.tokenizer.encode(text, { addSpecialTokens: false });
      assert.ok(!want.includes(next) && !want.includes(next + 1), "every digit on its own");
      assert.deepEqual(back.encode(text, { addSpecialTokens: false }), want, text);
    }
  });

  it("llama3 RoPE scaling becomes a rope_freqs tensor of Llama 3's factors and no scaling keys", async () => {
    // As written: rope_theta 500000, head_dim 16, factor 8, low/high_freq_factor 1/4,
    // original_max_position_embeddings 128; then the same model with the original context at 1024,
    // which moves the interpolated band to another dimension.
    const dir = writeTinyModel(path.join(tmp, "l3"), "llama3-rope").dir;
    const configFile = path.join(dir, "config.json");
    const config = JSON.parse(readFileSync(configFile, "utf8")) as {
      rope_theta: number;
      rope_scaling: Llama3Scaling;
    };
    const pinned: [Llama3Scaling, number[]][] = [
      [config.rope_scaling, [1, 1.0146304635200791, 8, 8, 8, 8, 8, 8]],
      [
        { ...config.rope_scaling, original_max_position_embeddings: 1024 },
        [1, 1, 1, 5.556022440971171, 8, 8, 8, 8],
      ],
    ];
    for (const [k, [scaling, values]] of pinned.entries()) {
      writeFileSync(configFile, JSON.stringify({ ...config, rope_scaling: scaling }));
      const { g } = await convert(dir, `l3-${k}`);
      const t = g.tensors.get("rope_freqs.weight")!;
      assert.equal(t.type, 0, "rope_freqs is f32");
      assert.deepEqual(t.shape, [8]);
      const got = [...new Float32Array(t.data.slice().buffer)];
      const expected = llama3Factors(config.rope_theta, 16, scaling);
      for (let i = 0; i < 8; i++) {
        assert.ok(
          Math.abs(got[i]! - expected[i]!) <= 1e-6 * expected[i]!,
          `factor ${i}: ${got[i]} vs ${expected[i]}`,
        );
        assert.ok(
          Math.abs(got[i]! - values[i]!) <= 1e-6 * values[i]!,
          `factor ${i}: ${got[i]} vs ${values[i]}`,
        );
      }
      assert.equal(g.metadata.has("llama.rope.scaling.factor"), false);
      assert.equal(g.metadata.has("llama.rope.scaling.type"), false);
    }
  });

  it("linear RoPE scaling is written as llama.rope.scaling.*; f16 weights stay f16", async () => {
    const { g } = await convert(writeTinyModel(path.join(tmp, "lin"), "linear-rope").dir, "lin");
    assert.equal(g.metadata.get("llama.rope.scaling.type"), "linear");
    assert.equal(g.metadata.get("llama.rope.scaling.factor"), 2);
    assert.equal(g.metadata.get("general.file_type"), 1);
    assert.equal(g.tensors.get("blk.1.attn_q.weight")!.type, 1);
  });

  it("Qwen2 keeps rotate-half q/k rows and writes its biases as f32", async () => {
    const { g, model } = await convert(writeTinyModel(path.join(tmp, "qwen"), "qwen2").dir, "qwen");
    assert.equal(g.metadata.get("general.architecture"), "qwen2");
    assert.equal(g.metadata.get("qwen2.block_count"), 2);
    const q = model.weights.get("model.layers.0.self_attn.q_proj.weight")!;
    const bias = model.weights.get("model.layers.0.self_attn.k_proj.bias")!;
    const data = g.tensors.get("blk.0.attn_q.weight")!.data;
    assert.deepEqual(Buffer.from(data), Buffer.from(q.data.buffer, q.data.byteOffset, q.data.byteLength));
    const b = g.tensors.get("blk.0.attn_k.bias")!;
    assert.equal(b.type, 0);
    assert.deepEqual([...new Float32Array(b.data.slice().buffer)], [...toFloat32(bias)]);
  });

  it("an explicit head_dim is stated as key/value length and RoPE dimension", async () => {
    const { g } = await convert(writeTinyModel(path.join(tmp, "hd"), "head-dim").dir, "hd");
    assert.equal(g.metadata.get("llama.attention.key_length"), 16);
    assert.equal(g.metadata.get("llama.rope.dimension_count"), 16);
    assert.deepEqual(g.tensors.get("blk.0.attn_q.weight")!.shape, [64, 48]);
  });

  it("a vocabulary smaller than the model's is padded with unused tokens", async () => {
    const model = await loadModel(writeTinyModel(path.join(tmp, "pad"), "llama-mha").dir);
    const wider = { ...model, config: { ...model.config, vocabSize: 300 } };
    const vocab = extractVocab(wider);
    assert.equal(vocab.tokens.length, 300);
    assert.equal(vocab.tokens[257], "</s>");
    assert.equal(vocab.tokens[258], "[PAD258]");
    assert.equal(vocab.tokens[299], "[PAD299]");
    assert.deepEqual([...vocab.tokenTypes.slice(255, 260)], [1, 3, 3, 5, 5]);
  });

  it("unsupported models get clear errors", async () => {
    const mistral = writeTinyModel(path.join(tmp, "mis"), "mistral").dir;
    await assert.rejects(convert(mistral, "mis"), /sliding-window attention \(window 8 < context 256\)/);
    await assert.rejects(convert("random", "random"), /random-weight demo model has no tokenizer file/);
  });
});
