import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadHfTokenizer } from "../../src/tokenizer/index.js";
import { llamaCppVectors, MULTILINGUAL, tokenizerDir } from "./fixtures.js";

const llama3 = loadHfTokenizer(tokenizerDir("tokenizer-llama3"));
const qwen3 = loadHfTokenizer(tokenizerDir("tokenizer-qwen3"));
const mistral = loadHfTokenizer(tokenizerDir("tokenizer-mistral-v0.1"));

describe("Hugging Face tokenizer.json against llama.cpp's vectors", () => {
  for (const [name, tok, file] of [
    ["Llama 3 (byte-level BPE)", llama3, "ggml-vocab-llama-bpe.gguf"],
    ["Qwen2 vocabulary via the Qwen3 tokenizer", qwen3, "ggml-vocab-qwen2.gguf"],
  ] as const) {
    it(`${name}: every vector encodes to llama.cpp's ids`, () => {
      const vectors = llamaCppVectors(file);
      assert.equal(vectors.length, 46);
      for (const v of vectors) {
        assert.deepEqual(tok.encode(v.text, { addSpecialTokens: false }), v.ids, JSON.stringify(v.text));
      }
    });
  }
});

describe("Hugging Face tokenizer: round trips", () => {
  const texts = [...llamaCppVectors("ggml-vocab-llama-bpe.gguf").map((v) => v.text), ...MULTILINGUAL];
  for (const [name, tok] of [
    ["llama3", llama3],
    ["qwen3", qwen3],
    ["mistral (SentencePiece BPE, byte fallback)", mistral],
  ] as const) {
    it(`${name}: decode(encode(x)) == x`, () => {
      for (const t of texts) assert.equal(tok.decode(tok.encode(t)), t, JSON.stringify(t));
    });
  }

  it("does not 'clean up' spaces before punctuation even where tokenizer_config.json asks for it", () => {
    const text = "Hello . world , ok 'll ?";
    assert.equal(llama3.decode(llama3.encode(text)), text);
  });
});

describe("Hugging Face tokenizer: special tokens", () => {
  it("reads bos/eos and the vocabulary size", () => {
    assert.deepEqual([llama3.vocabSize, llama3.bosTokenId, llama3.eosTokenIds], [128256, 128000, [128001]]);
    assert.deepEqual([qwen3.vocabSize, qwen3.bosTokenId, qwen3.eosTokenIds], [151669, null, [151645]]);
    assert.deepEqual([mistral.vocabSize, mistral.bosTokenId, mistral.eosTokenIds], [32000, 1, [2]]);
  });

  it("adds BOS only where the post-processor or add_bos_token says so", () => {
    assert.deepEqual(mistral.encode("Hello world"), [1, 22557, 1526]);
    assert.deepEqual(mistral.encode("Hello world", { addSpecialTokens: false }), [22557, 1526]);
    assert.deepEqual(mistral.encode(""), [1]);
    // This Llama 3 tokenizer.json's post-processor is ByteLevel only: no BOS (the chat template adds it).
    assert.deepEqual(llama3.encode("Hello world"), [9906, 1917]);
    assert.deepEqual(qwen3.encode("Hello world"), [9707, 1879]);
  });

  it("parses special-token text in the input as the special token", () => {
    assert.deepEqual(
      qwen3.encode("<|im_start|>user\nhi<|im_end|>", { addSpecialTokens: false }),
      [151644, 872, 198, 6023, 151645],
    );
  });

  it("skips special tokens on decode by default, keeps them on request, ignores unknown ids", () => {
    assert.equal(llama3.decode([128000, 9906, 128009]), "Hello");
    assert.equal(
      llama3.decode([128000, 9906, 128009], { skipSpecialTokens: false }),
      "<|begin_of_text|>Hello<|eot_id|>",
    );
    assert.equal(mistral.decode([1, 22557], { skipSpecialTokens: false }), "<s> Hello");
    assert.equal(mistral.decode([1, 22557]), "Hello");
    assert.equal(llama3.decode([]), "");
    assert.equal(llama3.decode([9906, 999999, -1, 1917]), "Hello world");
  });

  it("exposes byte pieces that agree with decode, token by token", () => {
    for (const tok of [llama3, qwen3, mistral]) {
      assert.ok(tok.pieces, "pieces expected for byte-level and SentencePiece decoders");
    }
    // "🦙" is split across byte-level tokens: each piece is a fragment of its UTF-8 bytes.
    const ids = llama3.encode("🦙", { addSpecialTokens: false });
    assert.ok(ids.length > 1);
    const bytes = ids.flatMap((id) => [...llama3.pieces!.bytes(id)]);
    assert.deepEqual(bytes, [...Buffer.from("🦙")]);
    assert.deepEqual([...mistral.pieces!.bytes(22557)], [...Buffer.from(" Hello")]);
    assert.deepEqual(
      [...mistral.pieces!.bytes(mistral.encode("\n", { addSpecialTokens: false }).at(-1)!)],
      [10],
    );
  });
});
