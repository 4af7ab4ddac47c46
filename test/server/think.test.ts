// Think-tag reasoning (Qwen3, DeepSeek-R1's distills, SmolLM3, GLM-Z1) through
// /v1/chat/completions: what a reply says inside <think> ... </think> comes back as
// reasoning_content, the rest as content, each without the whitespace it starts with; a template
// that opened the block in the prompt starts the reply inside it, one that closed it outside. The
// model answers from a successor table (successor-model.ts): after "i" it thinks "hm", then says "Hi".
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ThinkStream, thinkMarkers } from "../../src/server/think.js";
import { loadHfTokenizer } from "../../src/tokenizer/hf-tokenizer.js";
import { writeSuccessorModel, writeSuccessorTokenizer } from "../helpers/successor-model.js";
import { type LiveServer, startServer } from "./helpers.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-think-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const [OPEN, CLOSE] = [258, 259];
const c = (ch: string) => ch.charCodeAt(0);

describe("POST /v1/chat/completions with think tags (real engine)", () => {
  let s: LiveServer;
  before(async () => {
    const dir = path.join(tmp, "model");
    writeSuccessorModel(dir, {
      added: [
        { content: "<think>", special: false },
        { content: "</think>", special: false },
      ],
      // kwargs open or close the block in the prompt, as R1's and Qwen3's (enable_thinking false) templates do.
      template:
        "{% for m in messages %}{{ m.content }}{% endfor %}" +
        "{% if open %}<think>\n{% endif %}{% if closed %}<think>\n\n</think>\n\n{% endif %}",
      eos: [],
      // "i" -> <think> -> "\n" -> "h" -> "m" -> </think> -> "\n" -> "H" -> "i" -> ...
      next: [
        [c("i"), OPEN, 10],
        [OPEN, c("\n"), 10],
        [c("\n"), c("h"), 10],
        [c("h"), c("m"), 10],
        [c("m"), CLOSE, 10],
        [CLOSE, c(" "), 10],
        [c(" "), c("H"), 10],
        [c("H"), c("i"), 10],
      ],
    });
    s = await startServer({ model: dir });
  });
  after(() => s.close());

  type Message = { content: string | null; reasoning_content?: string };
  const ask = async (maxTokens: number, kwargs: Record<string, unknown> = {}) => {
    const r = await s.client.chat.completions.create({
      model: "model",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: maxTokens,
      temperature: 0,
      chat_template_kwargs: kwargs,
    } as Parameters<typeof s.client.chat.completions.create>[0] & { stream?: false });
    const m = r.choices[0]!.message as unknown as Message;
    return [m.reasoning_content, m.content];
  };

  it("the think block is reasoning_content, the answer content, tags and leading newlines in neither", async () => {
    // <think> \n h m </think> " " H i
    assert.deepEqual(await ask(8), ["hm", "Hi"]);
    // Cut inside the block: all reasoning so far.
    assert.deepEqual(await ask(3), ["h", ""]);
  });

  it("a prompt that opened the block starts the reply inside it; one that closed it, outside", async () => {
    // Prompt ends "<think>\n": the reply "h m </think> ' ' H i ..." (\n's successor is h).
    assert.deepEqual(await ask(6, { open: true }), ["hm", "Hi"]);
    // Prompt ends "</think>\n\n": the reply starts after the block; its next think block is reasoning.
    assert.deepEqual(await ask(7, { closed: true }), [undefined, "hm Hi"]);
  });

  it("streamed deltas add up to the whole reply", async () => {
    const stream = await s.client.chat.completions.create({
      model: "model",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 8,
      temperature: 0,
      stream: true,
    });
    let content = "";
    let reasoning = "";
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta as { content?: string; reasoning_content?: string } | undefined;
      content += d?.content ?? "";
      reasoning += d?.reasoning_content ?? "";
    }
    assert.deepEqual([reasoning, content], ["hm", "Hi"]);
  });
});

describe("Seed-OSS's <seed:think> tags", () => {
  it("are the think markers of a vocabulary that has them, and split a reply the same way", () => {
    const dir = path.join(tmp, "seed");
    writeSuccessorTokenizer(dir, {
      added: [
        { content: "<seed:think>", special: false },
        { content: "</seed:think>", special: false },
      ],
      template: "{% for m in messages %}{{ m.content }}{% endfor %}",
      eos: [],
    });
    const tok = loadHfTokenizer(dir);
    const markers = thinkMarkers(tok)!;
    assert.deepEqual(markers, { open: 258, close: 259 });
    const s = new ThinkStream(tok, markers, []);
    const t = s.push(tok.encode("<seed:think>\nhm</seed:think>\n\nHi", { addSpecialTokens: false }));
    const rest = s.flush();
    assert.deepEqual([t.reasoning + rest.reasoning, t.content + rest.content], ["hm", "Hi"]);
  });
});
