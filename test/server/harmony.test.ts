// gpt-oss's harmony replies through /v1/chat/completions: analysis bodies as reasoning_content,
// the others as content, markers and headers in neither, streamed or whole. The model is a real one
// built to answer predictably: each token's embedding is its own axis and every layer adds nothing,
// so greedy decoding follows a successor table written into the LM head (a harmony reply that
// repeats), and a logit bias on "final" turns its channel from analysis to the answer.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { HarmonyStream, harmonyMarkers } from "../../src/server/harmony.js";
import { loadHfTokenizer } from "../../src/tokenizer/hf-tokenizer.js";
import { writeSuccessorModel, writeSuccessorTokenizer } from "../helpers/successor-model.js";
import { byteLevelTokenizerJson } from "../helpers/tiny-models.js";
import { type LiveServer, startServer } from "./helpers.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-harmony-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const MARKERS = ["<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>", "<|call|>"];
const [START, CHANNEL, MESSAGE, END, RETURN] = [258, 259, 260, 261, 262];
const WORDS = ["analysis", "final", "assistant"];
const [ANALYSIS, FINAL, ASSISTANT] = [264, 265, 266];
const h = "h".charCodeAt(0);
const m = "m".charCodeAt(0);

const HARMONY = {
  added: [
    ...MARKERS.map((content) => ({ content, special: true })),
    ...WORDS.map((content) => ({ content, special: false })),
  ],
  template:
    "{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{% endfor %}" +
    "{% if add_generation_prompt %}<|start|>assistant{% endif %}",
  eos: [RETURN],
  // A harmony reply that repeats; "final" is the runner-up after <|channel|>.
  next: [
    [ASSISTANT, CHANNEL, 10],
    [CHANNEL, ANALYSIS, 10],
    [CHANNEL, FINAL, 9],
    [ANALYSIS, MESSAGE, 10],
    [FINAL, MESSAGE, 10],
    [MESSAGE, h, 10],
    [h, m, 10],
    [m, END, 10],
    [END, START, 10],
    [START, ASSISTANT, 10],
  ] as [number, number, number][],
};

describe("harmony replies split by token", () => {
  const dir = path.join(tmp, "tok");
  writeSuccessorTokenizer(dir, HARMONY);
  const tokenizer = loadHfTokenizer(dir);
  const markers = harmonyMarkers(tokenizer)!;
  const ids = (text: string) => tokenizer.encode(text, { addSpecialTokens: false });

  it("finds the markers, and none in a vocabulary without them", () => {
    assert.equal(markers.start, START);
    assert.equal(markers.channel, CHANNEL);
    assert.deepEqual([...markers.ends].sort(), [END, RETURN, 263]);
    const plain = path.join(tmp, "plain");
    mkdirSync(plain, { recursive: true });
    writeFileSync(path.join(plain, "tokenizer.json"), JSON.stringify(byteLevelTokenizerJson()));
    assert.equal(harmonyMarkers(loadHfTokenizer(plain)), null);
  });

  it("reasoning and answer apart, however the tokens are cut into events (a character across two)", () => {
    const reply = ids(
      "<|channel|>analysis<|message|>think é<|end|><|start|>assistant<|channel|>final<|message|>Answer ü!<|return|>",
    );
    for (const cut of [1, 2, 3, 5, reply.length]) {
      const s = new HarmonyStream(tokenizer, markers);
      let reasoning = "";
      let content = "";
      for (let i = 0; i < reply.length; i += cut) {
        const t = s.push(reply.slice(i, i + cut));
        reasoning += t.reasoning;
        content += t.content;
      }
      const t = s.flush();
      assert.deepEqual(
        [reasoning + t.reasoning, content + t.content],
        ["think é", "Answer ü!"],
        `events of ${cut}`,
      );
    }
  });

  it("a message without a channel, text outside any message and a cut-off body are content", () => {
    const s = new HarmonyStream(tokenizer, markers);
    const a = s.push(ids("<|message|>plain<|end|>stray<|start|>assistant<|channel|>final<|message|>cut"));
    const b = s.flush();
    assert.deepEqual([a.reasoning + b.reasoning, a.content + b.content], ["", "plainstraycut"]);
  });
});

describe("POST /v1/chat/completions with a harmony model (real engine)", () => {
  let s: LiveServer;
  const dir = path.join(tmp, "successor");
  before(async () => {
    writeSuccessorModel(dir, HARMONY);
    s = await startServer({ model: dir });
  });
  after(() => s.close());
  const messages = [{ role: "user" as const, content: "hi" }];
  type Harmony = { content: string | null; reasoning_content?: string };

  it("the analysis channel comes back as reasoning_content, the markers in neither part", async () => {
    const r = await s.client.chat.completions.create({
      model: "successor",
      messages,
      max_tokens: 12,
      temperature: 0,
    });
    // <|channel|>analysis<|message|>hm<|end|><|start|>assistant<|channel|>analysis<|message|>h
    const msg = r.choices[0]!.message as unknown as Harmony;
    assert.deepEqual([msg.content, msg.reasoning_content], ["", "hmh"]);
  });

  it("the final channel is the content; streamed deltas add up to the whole reply", async () => {
    // The LM head sees each one-hot embedding normed to √272 ≈ 16.5, so the runner-up trails by 16.5.
    const logit_bias = { [String(FINAL)]: 30 };
    const whole = await s.client.chat.completions.create({
      model: "successor",
      messages,
      max_tokens: 12,
      temperature: 0,
      logit_bias,
    });
    const msg = whole.choices[0]!.message as unknown as Harmony;
    assert.deepEqual([msg.content, msg.reasoning_content], ["hmh", undefined]);
    for (const bias of [logit_bias, undefined]) {
      const stream = await s.client.chat.completions.create({
        model: "successor",
        messages,
        max_tokens: 12,
        temperature: 0,
        stream: true,
        ...(bias ? { logit_bias: bias } : {}),
      });
      let content = "";
      let reasoning = "";
      for await (const chunk of stream) {
        const d = chunk.choices[0]?.delta as { content?: string; reasoning_content?: string } | undefined;
        content += d?.content ?? "";
        reasoning += d?.reasoning_content ?? "";
      }
      assert.deepEqual([content, reasoning], bias ? ["hmh", ""] : ["", "hmh"]);
    }
  });
});
