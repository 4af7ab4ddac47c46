import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { loadHfTokenizer } from "../../src/tokenizer/index.js";
import type { ChatMessage } from "../../src/tokenizer/types.js";
import { tokenizerDir } from "./fixtures.js";

// Expected strings were rendered independently with Python's jinja2 the way transformers does
// (sandboxed environment, trim_blocks, lstrip_blocks, the same variables).

describe("chat templates of real tokenizer_config.json files", () => {
  const llama3 = loadHfTokenizer(tokenizerDir("tokenizer-llama3"));
  const qwen3 = loadHfTokenizer(tokenizerDir("tokenizer-qwen3"));

  it("Llama 3: BOS, headers, trimmed content, generation prompt", () => {
    const messages: ChatMessage[] = [
      { role: "system", content: "You are terse." },
      { role: "user", content: "  Hi there!\n" },
    ];
    const text = llama3.applyChatTemplate(messages, { addGenerationPrompt: true });
    assert.equal(
      text,
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    const ids = llama3.encode(text, { addSpecialTokens: false });
    assert.deepEqual(ids.slice(0, 4), [128000, 128006, 9125, 128007]);
  });

  it("Qwen3: ChatML with a system turn and a generation prompt", () => {
    const text = qwen3.applyChatTemplate(
      [
        { role: "system", content: "You are terse." },
        { role: "user", content: "Hi there!" },
      ],
      { addGenerationPrompt: true },
    );
    assert.equal(
      text,
      "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
    );
    assert.deepEqual(qwen3.encode(text, { addSpecialTokens: false }).slice(0, 2), [151644, 8948]);
  });

  it("Qwen3: reasoning is dropped from earlier turns and kept, emptied, on the last", () => {
    const text = qwen3.applyChatTemplate(
      [
        { role: "user", content: "2+2?" },
        { role: "assistant", content: "<think>\nadd\n</think>\n\n4" },
        { role: "user", content: "and 3+3?" },
        { role: "assistant", content: "6" },
      ],
      { addGenerationPrompt: false },
    );
    assert.equal(
      text,
      "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nand 3+3?<|im_end|>\n" +
        "<|im_start|>assistant\n<think>\n\n</think>\n\n6<|im_end|>\n",
    );
  });

  it("Qwen3: non-ASCII content passes through untouched", () => {
    const text = qwen3.applyChatTemplate([{ role: "user", content: "多少? 🦙" }]);
    assert.equal(text, "<|im_start|>user\n多少? 🦙<|im_end|>\n<|im_start|>assistant\n");
  });

  it("Mistral v0.1's tokenizer_config.json has no template: a clear error", () => {
    const mistral = loadHfTokenizer(tokenizerDir("tokenizer-mistral-v0.1"));
    assert.equal(mistral.hasChatTemplate, false);
    assert.throws(() => mistral.applyChatTemplate([{ role: "user", content: "hi" }]), /has no chat template/);
  });
});

const scratch = mkdtempSync(path.join(tmpdir(), "lamina-chat-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A tokenizer directory with the Mistral tokenizer.json and a config of our own. */
function dirWithConfig(config: object): string {
  const dir = mkdtempSync(path.join(scratch, "case-"));
  const tokenizerJson = readFileSync(path.join(tokenizerDir("tokenizer-mistral-v0.1"), "tokenizer.json"));
  writeFileSync(path.join(dir, "tokenizer.json"), tokenizerJson);
  writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(config));
  return dir;
}

describe("chat template forms and failures", () => {
  const alternating =
    "{{ bos_token }}{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
    "{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}" +
    "{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}";

  it("a list of named templates uses the one named default", () => {
    const tok = loadHfTokenizer(
      dirWithConfig({
        bos_token: "<s>",
        eos_token: "</s>",
        chat_template: [
          { name: "tool_use", template: "TOOLS" },
          { name: "default", template: alternating },
        ],
      }),
    );
    const msgs: ChatMessage[] = [
      { role: "user", content: "hi" },
      { role: "assistant", content: "hello" },
      { role: "user", content: "bye" },
    ];
    assert.equal(tok.applyChatTemplate(msgs), "<s>[INST] hi [/INST]hello</s>[INST] bye [/INST]");
  });

  it("raise_exception in a template becomes an error carrying its message", () => {
    const tok = loadHfTokenizer(
      dirWithConfig({ bos_token: "<s>", eos_token: "</s>", chat_template: alternating }),
    );
    assert.throws(
      () => tok.applyChatTemplate([{ role: "assistant", content: "x" }]),
      /tokenizer_config\.json failed: Conversation roles must alternate user\/assistant/,
    );
  });

  it("a list without a default, or a template that does not parse, fails at load naming the file", () => {
    assert.throws(
      () => loadHfTokenizer(dirWithConfig({ chat_template: [{ name: "tool_use", template: "x" }] })),
      /tokenizer_config\.json.*none is named "default"/,
    );
    assert.throws(
      () => loadHfTokenizer(dirWithConfig({ chat_template: "{% if %}" })),
      /chat template in .*tokenizer_config\.json does not parse/,
    );
  });
});
