import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { loadHfTokenizer, loadLlama2cTokenizer } from "../../src/tokenizer/index.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { llamaCppVectors, MULTILINGUAL, tokenizerDir } from "./fixtures.js";

const llama2 = loadLlama2cTokenizer(path.join(tokenizerDir("tokenizer-llama2"), "tokenizer.bin"), {
  vocabSize: 32000,
});
const tok512 = loadLlama2cTokenizer(sharedDataPath("models", "stories260K", "tok512.bin"));

interface Golden {
  encode_tests_with_bos: Record<string, number[]>;
  cases: {
    prompt: string;
    prompt_token_ids: number[];
    generated_token_ids: number[];
    text_as_printed_by_run_c: string;
  }[];
}
const golden = JSON.parse(
  readFileSync(sharedDataPath("models", "stories260K", "golden_stories260K.json"), "utf8"),
) as Golden;

describe("llama2.c tokenizer.bin", () => {
  it("Llama 2 vocabulary: every llama.cpp spm vector encodes to llama.cpp's ids", () => {
    const vectors = llamaCppVectors("ggml-vocab-llama-spm.gguf");
    assert.equal(vectors.length, 46);
    for (const v of vectors) {
      assert.deepEqual(llama2.encode(v.text, { addSpecialTokens: false }), v.ids, JSON.stringify(v.text));
    }
  });

  it("Llama 2 vocabulary: BOS=1, EOS=2, 32000 tokens, byte fallback", () => {
    assert.deepEqual([llama2.vocabSize, llama2.bosTokenId, llama2.eosTokenIds], [32000, 1, [2]]);
    assert.deepEqual(llama2.encode("Hello world"), [1, 15043, 3186]);
    // U+1F999 (🦙) is not in the vocabulary: four <0xNN> tokens, id = byte + 3.
    assert.deepEqual(llama2.encode("🦙", { addSpecialTokens: false }), [
      29871,
      0xf0 + 3,
      0x9f + 3,
      0xa6 + 3,
      0x99 + 3,
    ]);
  });

  it("round trips, including leading spaces and text outside the vocabulary", () => {
    const texts = [...llamaCppVectors("ggml-vocab-llama-spm.gguf").map((v) => v.text), ...MULTILINGUAL];
    for (const tok of [llama2, tok512]) {
      for (const t of texts) assert.equal(tok.decode(tok.encode(t)), t, JSON.stringify(t));
    }
  });

  it("decode renders specials only on request", () => {
    assert.equal(llama2.decode([1, 15043, 3186, 2]), "Hello world");
    assert.equal(llama2.decode([1, 15043, 3186, 2], { skipSpecialTokens: false }), "<s> Hello world</s>");
    assert.equal(llama2.decode([15043, 99999]), "Hello");
  });

  it("stories260K tok512.bin: run.c's encodings and decoded outputs", () => {
    assert.equal(tok512.vocabSize, 512);
    for (const [text, ids] of Object.entries(golden.encode_tests_with_bos)) {
      assert.deepEqual(tok512.encode(text), ids, JSON.stringify(text));
    }
    for (const c of golden.cases) {
      assert.deepEqual(tok512.encode(c.prompt), c.prompt_token_ids);
      assert.equal(
        tok512.decode([...c.prompt_token_ids, ...c.generated_token_ids]),
        c.text_as_printed_by_run_c,
      );
    }
  });

  it("tok512.bin agrees with the Hugging Face tokenizer.json derived from it", () => {
    const hf = loadHfTokenizer(sharedDataPath("models", "stories260K", "hf"));
    const texts = [...llamaCppVectors("ggml-vocab-llama-spm.gguf").map((v) => v.text), ...MULTILINGUAL];
    for (const t of texts) assert.deepEqual(tok512.encode(t), hf.encode(t), JSON.stringify(t));
  });

  it("has no chat template", () => {
    assert.equal(llama2.hasChatTemplate, false);
    assert.throws(
      () => llama2.applyChatTemplate([{ role: "user", content: "x" }]),
      /tokenizer\.bin has no chat template/,
    );
  });
});
