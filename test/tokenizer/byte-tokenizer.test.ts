import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BYTE_BOS_ID, BYTE_EOS_ID, BYTE_VOCAB_SIZE, createByteTokenizer } from "../../src/tokenizer/index.js";
import { MULTILINGUAL } from "./fixtures.js";

describe("byte tokenizer (random-weight demo model)", () => {
  const tok = createByteTokenizer();

  it("is one token per UTF-8 byte plus BOS and EOS", () => {
    assert.equal(tok.vocabSize, BYTE_VOCAB_SIZE);
    assert.equal(BYTE_VOCAB_SIZE, 258);
    assert.equal(tok.bosTokenId, BYTE_BOS_ID);
    assert.deepEqual(tok.eosTokenIds, [BYTE_EOS_ID]);
    assert.deepEqual(tok.encode("Hé"), [256, 0x48, 0xc3, 0xa9]);
    assert.deepEqual(tok.encode("Hé", { addSpecialTokens: false }), [0x48, 0xc3, 0xa9]);
  });

  it("round trips any text and drops specials unless asked", () => {
    for (const t of [...MULTILINGUAL, ""]) assert.equal(tok.decode(tok.encode(t)), t);
    assert.equal(
      tok.decode([BYTE_BOS_ID, 0x68, 0x69, BYTE_EOS_ID], { skipSpecialTokens: false }),
      "<|bos|>hi<|eos|>",
    );
    assert.equal(tok.decode([0x68, 999, 0x69]), "hi");
  });

  it("has a simple built-in chat template", () => {
    assert.equal(tok.hasChatTemplate, true);
    const text = tok.applyChatTemplate([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
    ]);
    assert.equal(text, "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n");
    assert.equal(
      tok.applyChatTemplate([{ role: "user", content: "Hi" }], { addGenerationPrompt: false }),
      "<|user|>\nHi\n",
    );
  });
});
