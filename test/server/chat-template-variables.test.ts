// Request fields that reach the chat template: OpenAI's reasoning_effort (gpt-oss's harmony
// template reads it) and vLLM's chat_template_kwargs (Qwen3's enable_thinking, ...). The tiny
// model's byte-level tokenizer makes a prompt's token count its rendered length plus BOS, so each
// variable's effect is read off usage.prompt_tokens.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ThreadedPromptEncoder } from "../../src/placement/prompt-encoder.js";
import { loadHfTokenizer } from "../../src/tokenizer/index.js";
import { chatPromptIds } from "../../src/tokenizer/prompt-ids.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { type LiveServer, postRaw, startServer } from "./helpers.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-template-vars-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const TEMPLATE =
  "{% for m in messages %}{{ m.content }}{% endfor %}[{{ reasoning_effort | default('none') }}]" +
  "{% if enable_thinking is defined and enable_thinking is false %}[nothink]{% endif %}";

/** The tiny model with the template above. */
function templatedModel(name: string): string {
  const dir = writeTinyModel(path.join(tmp, name), "llama-mha").dir;
  const file = path.join(dir, "tokenizer_config.json");
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), chat_template: TEMPLATE }));
  return dir;
}

describe("chat template variables from the request", () => {
  let s: LiveServer;
  before(async () => {
    s = await startServer({ model: templatedModel("tiny") });
  });
  after(() => s.close());

  const promptTokens = async (extra: Record<string, unknown>) => {
    const r = await postRaw(
      `${s.url}/v1/chat/completions`,
      JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 1, ...extra }),
    );
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return (r.json as unknown as { usage: { prompt_tokens: number } }).usage.prompt_tokens;
  };

  it("reasoning_effort and chat_template_kwargs are rendered; they cannot replace the messages", async () => {
    // BOS + "hi[none]", "hi[low]", "hi[none][nothink]", "hi[high][nothink]".
    assert.equal(await promptTokens({}), 9);
    assert.equal(await promptTokens({ reasoning_effort: "low" }), 8);
    assert.equal(await promptTokens({ chat_template_kwargs: { enable_thinking: false } }), 18);
    assert.equal(
      await promptTokens({ reasoning_effort: "high", chat_template_kwargs: { enable_thinking: false } }),
      18,
    );
    assert.equal(
      await promptTokens({ chat_template_kwargs: { messages: [], add_generation_prompt: false } }),
      9,
    );
  });

  it("malformed values are refused by name", async () => {
    const post = (extra: Record<string, unknown>) =>
      postRaw(
        `${s.url}/v1/chat/completions`,
        JSON.stringify({ messages: [{ role: "user", content: "hi" }], ...extra }),
      );
    const effort = await post({ reasoning_effort: "extreme" });
    assert.equal(effort.status, 400);
    assert.equal(effort.json.error?.param, "reasoning_effort");
    const key = await post({ chat_template_kwargs: { "not-a-name": 1 } });
    assert.equal(key.status, 400);
    assert.match(key.json.error?.param ?? "", /^chat_template_kwargs/);
  });

  it("a conversation too large to render inline takes its variables to the tokenizer thread", async () => {
    const dir = templatedModel("threaded");
    const tok = loadHfTokenizer(dir);
    const encoder = new ThreadedPromptEncoder(tok, { kind: "hf", path: dir, label: "tiny" });
    try {
      const turns = [{ role: "user" as const, content: "word ".repeat(5000) }]; // 25 KB: over the inline limit
      const vars = { reasoning_effort: "low", enable_thinking: false };
      const ids = await encoder.chat(turns, vars);
      assert.deepEqual(ids, chatPromptIds(tok, turns, vars));
      assert.equal(
        ids.length,
        (await encoder.chat(turns)).length + "[low][nothink]".length - "[none]".length,
      );
    } finally {
      await encoder.close();
    }
  });
});
