import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import {
  createByteTokenizer,
  IncrementalDetokenizer,
  loadHfTokenizer,
  loadLlama2cTokenizer,
  type Tokenizer,
} from "../../src/tokenizer/index.js";
import { llamaCppVectors, MULTILINGUAL, tokenizerDir } from "./fixtures.js";

const tokenizers: [string, Tokenizer][] = [
  ["llama3", loadHfTokenizer(tokenizerDir("tokenizer-llama3"))],
  ["qwen3", loadHfTokenizer(tokenizerDir("tokenizer-qwen3"))],
  ["mistral", loadHfTokenizer(tokenizerDir("tokenizer-mistral-v0.1"))],
  ["llama2.c", loadLlama2cTokenizer(path.join(tokenizerDir("tokenizer-llama2"), "tokenizer.bin"))],
  ["byte", createByteTokenizer()],
];

/** The same tokenizer without its byte pieces: the detokenizer must re-decode instead. */
function withoutPieces(t: Tokenizer): Tokenizer {
  return {
    vocabSize: t.vocabSize,
    bosTokenId: t.bosTokenId,
    eosTokenIds: t.eosTokenIds,
    hasChatTemplate: t.hasChatTemplate,
    encode: (s, o) => t.encode(s, o),
    decode: (ids, o) => t.decode(ids, o),
    applyChatTemplate: (m, o) => t.applyChatTemplate(m, o),
  };
}

const TEXTS = [...MULTILINGUAL, ...llamaCppVectors("ggml-vocab-llama-bpe.gguf").map((v) => v.text)];
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Streams ids and checks each chunk is whole characters; returns the concatenation. */
function stream(d: IncrementalDetokenizer, ids: readonly number[]): string {
  let out = "";
  for (const id of ids) {
    const chunk = d.push(id);
    assert.ok(!chunk.includes("\uFFFD"), `half a character emitted: ${JSON.stringify(chunk)}`);
    assert.ok(!LONE_SURROGATE.test(chunk), `lone surrogate emitted: ${JSON.stringify(chunk)}`);
    out += chunk;
  }
  return out + d.flush();
}

describe("IncrementalDetokenizer", () => {
  for (const [name, tok] of tokenizers) {
    for (const [how, t] of [
      ["byte pieces", tok],
      ["re-decoding fallback", withoutPieces(tok)],
    ] as const) {
      it(`${name}, ${how}: streamed text equals the full decode (BOS included, specials skipped)`, () => {
        for (const text of TEXTS) {
          const ids = t.encode(text);
          assert.equal(stream(new IncrementalDetokenizer(t), ids), t.decode(ids), JSON.stringify(text));
        }
      });

      it(`${name}, ${how}: after a prompt, streams exactly what the prompt's decode lacks`, () => {
        for (const text of TEXTS) {
          const ids = t.encode(text);
          const cut = Math.max(1, ids.length >> 1);
          const prompt = ids.slice(0, cut);
          const full = t.decode(ids);
          const before = t.decode(prompt);
          // Only meaningful when the prompt does not end inside a character.
          if (!full.startsWith(before)) continue;
          assert.equal(
            stream(new IncrementalDetokenizer(t, prompt), ids.slice(cut)),
            full.slice(before.length),
          );
        }
      });
    }
  }

  it("holds back a split character until its last byte arrives", () => {
    const llama3 = tokenizers[0]![1];
    const ids = llama3.encode("🦙", { addSpecialTokens: false });
    assert.ok(ids.length >= 2);
    const d = new IncrementalDetokenizer(llama3);
    for (const id of ids.slice(0, -1)) assert.equal(d.push(id), "");
    assert.equal(d.push(ids.at(-1)!), "🦙");
  });

  it("SentencePiece: drops the dummy-prefix space at the start, keeps it after a prompt", () => {
    const mistral = tokenizers[2]![1];
    const hello = mistral.encode("Hello", { addSpecialTokens: false });
    assert.equal(new IncrementalDetokenizer(mistral).push(hello[0]!), "Hello");
    assert.equal(new IncrementalDetokenizer(mistral, [1]).push(hello[0]!), "Hello");
    const prompt = mistral.encode("Say");
    assert.equal(new IncrementalDetokenizer(mistral, prompt).push(hello[0]!), " Hello");
  });

  it("keeps special tokens when asked, like decode does", () => {
    for (const [, tok] of tokenizers) {
      const ids = [...tok.encode("Hi 🦙"), ...tok.eosTokenIds];
      const d = new IncrementalDetokenizer(tok, [], { skipSpecialTokens: false });
      assert.equal(stream(d, ids), tok.decode(ids, { skipSpecialTokens: false }));
    }
  });

  it("flush turns an unfinished character into U+FFFD", () => {
    const byte = tokenizers[4]![1];
    const d = new IncrementalDetokenizer(byte);
    assert.equal(d.push(0x41), "A");
    assert.equal(d.push(0xf0), "");
    assert.equal(d.push(0x9f), "");
    assert.equal(d.flush(), "\uFFFD");
    assert.equal(d.flush(), "");
  });
});
