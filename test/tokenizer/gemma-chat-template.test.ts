// Gemma's chat template form through our jinja setup: a template written for this test in the
// style Gemma's tokenizer_config.json uses (a system turn folded into the first user turn, the
// assistant's turns named "model", <start_of_turn>/<end_of_turn>, alternation enforced by
// raise_exception, content given as a string or as a list of typed parts).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { loadHfTokenizer } from "../../src/tokenizer/index.js";
import { tokenizerDir } from "./fixtures.js";

const GEMMA_STYLE_TEMPLATE = `{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
  {%- set first_user_prefix = messages[0]['content'] | trim + '\\n\\n' -%}
  {%- set turns = messages[1:] -%}
{%- else -%}
  {%- set first_user_prefix = '' -%}
  {%- set turns = messages -%}
{%- endif -%}
{%- for message in turns -%}
  {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
    {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
  {%- endif -%}
  {%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
  {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}
  {%- if message['content'] is string -%}
    {{ message['content'] | trim }}
  {%- else -%}
    {%- for item in message['content'] -%}
      {%- if item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}
    {%- endfor -%}
  {%- endif -%}
  {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
  {{ '<start_of_turn>model\\n' }}
{%- endif -%}`;

const scratch = mkdtempSync(path.join(tmpdir(), "lamina-gemma-chat-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A tokenizer directory: a real tokenizer.json and a tokenizer_config.json with the template. */
function gemmaStyleTokenizer() {
  const dir = mkdtempSync(path.join(scratch, "tok-"));
  const json = readFileSync(path.join(tokenizerDir("tokenizer-mistral-v0.1"), "tokenizer.json"));
  writeFileSync(path.join(dir, "tokenizer.json"), json);
  writeFileSync(
    path.join(dir, "tokenizer_config.json"),
    JSON.stringify({ bos_token: "<bos>", eos_token: "<eos>", chat_template: GEMMA_STYLE_TEMPLATE }),
  );
  return loadHfTokenizer(dir);
}

describe("a Gemma-style chat template", () => {
  const tok = gemmaStyleTokenizer();

  it("folds the system turn into the first user turn, names the assistant 'model', trims content", () => {
    const text = tok.applyChatTemplate(
      [
        { role: "system", content: "Be brief. " },
        { role: "user", content: "  Hi!\n" },
        { role: "assistant", content: "Hello." },
        { role: "user", content: "Bye" },
      ],
      { addGenerationPrompt: true },
    );
    assert.equal(
      text,
      "<bos><start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n" +
        "<start_of_turn>model\nHello.<end_of_turn>\n" +
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n",
    );
  });

  it("without a system turn or a generation prompt", () => {
    assert.equal(
      tok.applyChatTemplate([{ role: "user", content: "多少? 🦙" }], { addGenerationPrompt: false }),
      "<bos><start_of_turn>user\n多少? 🦙<end_of_turn>\n",
    );
  });

  it("roles that do not alternate fail with the template's own message", () => {
    assert.throws(
      () =>
        tok.applyChatTemplate([
          { role: "user", content: "a" },
          { role: "user", content: "b" },
        ]),
      /Conversation roles must alternate user\/assistant/,
    );
  });
});
