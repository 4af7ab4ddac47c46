// JSON mode and structured outputs (response_format json_object and json_schema) through
// /v1/chat/completions on real engines: a model whose most likely reply is not JSON answers with
// the JSON object its less likely tokens spell, and ends only once the object is closed, streamed
// or whole, past more refused tokens than the sampler checks one by one; a schema's types and enums
// hold; on stories260K (a real model, no chat template) every sampled reply is a prefix of a JSON
// object of the schema, whole where it stopped; what cannot run is refused by name.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { advanceJson, JSON_OBJECT, jsonComplete, jsonStart } from "../../src/engine/json-constraint.js";
import { compileSchema } from "../../src/engine/json-schema.js";
import { writeSuccessorModel } from "../helpers/successor-model.js";
import { type Body, chatOnce, expectBadRequests } from "./chat-request.js";
import { type LiveServer, startServer } from "./helpers.js";

const JSON_START = jsonStart(JSON_OBJECT);

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-json-mode-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const c = (ch: string) => ch.charCodeAt(0);
const ASK = [{ role: "user" as const, content: "hi" }];

async function ask(s: LiveServer, body: Body) {
  const { choice } = await chatOnce(s, body);
  return { content: choice.message.content, finish: choice.finish_reason };
}

describe("JSON mode on a model built to answer otherwise (real engine)", () => {
  const [OPEN, CLOSE, EOS] = [258, 259, 260];
  let s: LiveServer;
  before(async () => {
    const dir = path.join(tmp, "model");
    writeSuccessorModel(dir, {
      added: [
        { content: '{"a"', special: false },
        { content: ":1}", special: false },
        { content: "<|end|>", special: true },
      ],
      template: "{% for m in messages %}{{ m.content }}|{% endfor %}{{ lead or 'N' }}",
      eos: [EOS],
      next: [
        // N: "Hi" first, the object's opening second.
        [c("N"), c("H"), 10],
        [c("N"), OPEN, 9],
        [c("H"), c("i"), 10],
        [c("i"), EOS, 10],
        // After the opening: twenty letters (not JSON there) before its close.
        ...Array.from({ length: 20 }, (_, i) => [OPEN, c("A") + i, 10 - i * 0.1] as [number, number, number]),
        [OPEN, CLOSE, 5],
        // After the close: more text first, the end second.
        [CLOSE, c("H"), 10],
        [CLOSE, EOS, 9],
      ],
    });
    s = await startServer({ model: dir });
  });
  after(() => s.close());

  it("answers the JSON object where it would have said Hi, and ends once it is closed", async () => {
    assert.deepEqual(await ask(s, {}), { content: "Hi", finish: "stop" });
    const json = { response_format: { type: "json_object" } };
    assert.deepEqual(await ask(s, json), { content: '{"a":1}', finish: "stop" });
    assert.deepEqual(await ask(s, { ...json, response_format: { type: "text" } }), {
      content: "Hi",
      finish: "stop",
    });
    const stream = await s.client.chat.completions.create({
      model: s.engine.model.id,
      messages: ASK,
      temperature: 0,
      stream: true,
      response_format: { type: "json_object" },
    });
    let content = "";
    for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? "";
    assert.equal(content, '{"a":1}');
  });

  it("a json_schema reply follows the schema: its integer, or the one value its enum allows", async () => {
    const format = (schema: unknown) => ({
      response_format: { type: "json_schema", json_schema: { name: "answer", schema, strict: true } },
    });
    const integer = { type: "object", properties: { a: { type: "integer" } }, required: ["a"] };
    assert.deepEqual(await ask(s, format(integer)), { content: '{"a":1}', finish: "stop" });
    // 1 is not allowed: the model's ":1}" is refused, and the reply is the enum's 2 (whatever
    // whitespace the untrained rest of the table prefers around it).
    const two = {
      type: "object",
      properties: { a: { enum: [2] } },
      required: ["a"],
      additionalProperties: false,
    };
    const r = await ask(s, format(two));
    assert.equal(r.finish, "stop");
    assert.deepEqual(JSON.parse(r.content!), { a: 2 });
  });

  it("what JSON mode cannot run is refused by name", async () => {
    const url = `${s.url}/v1/chat/completions`;
    const tools = [{ type: "function", function: { name: "f" } }];
    const schema = (x: unknown) => ({
      response_format: { type: "json_schema", json_schema: { name: "x", schema: x } },
    });
    const cases: [Body, string, RegExp][] = [
      [
        schema({ type: "string", pattern: "^a" }),
        "response_format.json_schema.schema",
        /"pattern" is not supported/,
      ],
      [
        schema({ $ref: "#/$defs/Nope" }),
        "response_format.json_schema.schema",
        /"Nope", which is not defined/,
      ],
      [
        { response_format: { type: "json_schema", json_schema: { name: "bad name", schema: {} } } },
        "response_format.json_schema.name",
        /letters, digits/,
      ],
      [
        { response_format: { type: "json_object" }, tools },
        "response_format",
        /cannot be combined with tools/,
      ],
    ];
    await expectBadRequests(url, { messages: ASK }, cases);
  });
});

describe("JSON mode on a model that thinks first (real engine)", () => {
  const [OPEN, CLOSE, OBJ, END_OBJ, EOS] = [258, 259, 260, 261, 262];
  let s: LiveServer;
  before(async () => {
    const dir = path.join(tmp, "think");
    writeSuccessorModel(dir, {
      added: [
        { content: "<think>", special: false },
        { content: "</think>", special: false },
        { content: '{"a"', special: false },
        { content: ":1}", special: false },
        { content: "<|end|>", special: true },
      ],
      // "N": the reply opens its block; "open": the prompt did; "closed": the prompt closed it.
      template:
        "{% for m in messages %}{{ m.content }}|{% endfor %}N{% if open %}<think>{% endif %}" +
        "{% if closed %}<think></think>{% endif %}",
      eos: [EOS],
      next: [
        [c("N"), OPEN, 10],
        [OPEN, c("h"), 10],
        [c("h"), c("m"), 10],
        [c("m"), CLOSE, 10],
        // After the block: "Hi" first, the object second.
        [CLOSE, c("H"), 10],
        [CLOSE, OBJ, 9],
        [c("H"), c("i"), 10],
        [c("i"), EOS, 10],
        [OBJ, END_OBJ, 10],
        [END_OBJ, EOS, 10],
      ],
    });
    s = await startServer({ model: dir });
  });
  after(() => s.close());

  const parts = async (body: Body) => {
    const { choice } = await chatOnce(s, body);
    const m = choice.message as unknown as { content: string; reasoning_content?: string };
    return [m.reasoning_content, m.content];
  };
  const json = { response_format: { type: "json_object" } };

  it("reasons freely, then answers with the object, whether the reply or the prompt opened the block", async () => {
    assert.deepEqual(await parts({}), ["hm", "Hi"]);
    assert.deepEqual(await parts(json), ["hm", '{"a":1}']);
    assert.deepEqual(await parts({ ...json, chat_template_kwargs: { open: true } }), ["hm", '{"a":1}']);
    // A prompt that closed the block: the reply is the value from its first token (which the
    // model's own "<think>" is not).
    const closed = await parts({ ...json, chat_template_kwargs: { closed: true }, max_tokens: 3 });
    assert.ok(closed[1]!.startsWith("{"), JSON.stringify(closed));
  });
});

describe("JSON mode on stories260K (real model)", () => {
  let s: LiveServer;
  before(async () => {
    s = await startServer();
  });
  after(() => s.close());

  it("every sampled reply is a JSON object's prefix, a whole object where it stopped", async () => {
    const bytes = new TextEncoder();
    const person = {
      type: "object",
      properties: { name: { type: "string" }, age: { type: "integer" } },
      required: ["name", "age"],
    };
    for (let seed = 1; seed <= 6; seed++) {
      const structured = seed > 3;
      const { content, finish } = await ask(s, {
        response_format: structured
          ? { type: "json_schema", json_schema: { name: "person", schema: person } }
          : { type: "json_object" },
        temperature: 1,
        seed,
        max_tokens: 48,
      });
      const start = structured ? jsonStart(compileSchema(person)) : JSON_START;
      const state = advanceJson(start, bytes.encode(content ?? ""));
      assert.ok(state, `seed ${seed}: ${JSON.stringify(content)} is not a JSON object's prefix`);
      if (finish === "stop") {
        assert.ok(jsonComplete(state));
        const v: unknown = JSON.parse(content!);
        assert.ok(typeof v === "object" && v !== null && !Array.isArray(v));
      } else assert.equal(finish, "length");
    }
  });

  it("the completions endpoint draws its text as JSON too (vLLM's response_format there)", async () => {
    const r = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        prompt: "Once upon a time",
        max_tokens: 40,
        temperature: 1,
        seed: 3,
        response_format: { type: "json_object" },
      }),
    });
    assert.equal(r.status, 200);
    const body = (await r.json()) as { choices: { text: string; finish_reason: string }[] };
    const { text, finish_reason } = body.choices[0]!;
    assert.ok(text.trimStart().startsWith("{"), JSON.stringify(text));
    const state = advanceJson(JSON_START, new TextEncoder().encode(text));
    assert.ok(state, JSON.stringify(text));
    if (finish_reason === "stop") assert.ok(jsonComplete(state));
  });
});
