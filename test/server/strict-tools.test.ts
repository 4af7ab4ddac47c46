// Strict tools through /v1/chat/completions on a real engine: a model whose likeliest call names
// a city the tool's schema does not allow (or a tool the request does not offer) writes, under
// strict: true, a call whose name is one of the tools and whose arguments are a value of that
// tool's schema; the call's close tag follows the object, and text around calls is drawn freely.
// Without strict the model's own call comes back. Formats whose calls are not whole JSON objects,
// and schemas the constraint cannot draw, are refused by name.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { writeSuccessorModel } from "../helpers/successor-model.js";
import { HARMONY_MODEL, LLAMA3_MODEL, MISTRAL_MODEL, withRows } from "../helpers/tool-call-models.js";
import { type Body, chatOnce, expectBadRequests } from "./chat-request.js";
import { type LiveServer, startServer } from "./helpers.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-strict-tools-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const c = (ch: string) => ch.charCodeAt(0);
const ASK = [{ role: "user" as const, content: "weather?" }];
const weather = (strict: boolean, cities = ["Lyon", "Nice"]) => ({
  type: "function" as const,
  function: {
    name: "get_weather",
    parameters: {
      type: "object",
      properties: { city: { enum: cities }, days: { type: "integer" } },
      required: ["city", "days"],
      additionalProperties: false,
    },
    strict,
  },
});
const clock = (strict: boolean) => ({
  type: "function" as const,
  function: {
    name: "get_time",
    parameters: { type: "object", properties: { zone: { const: "UTC" } }, required: ["zone"] },
    strict,
  },
});

type Call = { function: { name: string; arguments: string } };

async function ask(s: LiveServer, body: Body) {
  const { choice } = await chatOnce(s, { messages: ASK, max_tokens: 150, ...body });
  const m = choice.message as unknown as { content: string | null; tool_calls?: Call[] };
  return {
    content: m.content,
    calls: (m.tool_calls ?? []).map((t) => [t.function.name, JSON.parse(t.function.arguments)]),
    finish: choice.finish_reason,
  };
}

/**
 * Where the table says nothing: `}` and `]` before `"` before other bytes before whitespace, so
 * that what a constraint leaves open is written in few tokens (an empty object or string where
 * allowed, a list that ends once it may).
 */
function preferences(vocab: number): [number, number, number][] {
  const rows: [number, number, number][] = [];
  for (let from = 0; from < vocab; from++) {
    rows.push([from, c("}"), 2], [from, c("]"), 2], [from, c('"'), 1]);
    for (const ws of [9, 10, 13, 32]) rows.push([from, ws, -5]);
  }
  return rows;
}

describe("strict tools in Hermes tags (real engine)", () => {
  const [OPEN, CLOSE, HEAD, ARGS, EOS] = [258, 259, 260, 261, 262];
  let s: LiveServer;
  before(async () => {
    const dir = path.join(tmp, "hermes");
    writeSuccessorModel(dir, {
      added: [
        { content: "<tool_call>", special: false },
        { content: "</tool_call>", special: false },
        { content: '{"name": "get_weather", "arguments": ', special: false },
        { content: '{"city": "Paris"}}', special: false },
        { content: "<|end|>", special: true },
      ],
      template:
        "{% if tools %}Call with <tool_call>.{% endif %}{% for m in messages %}{{ m.role }}:{{ m.content }}|{% endfor %}" +
        "{{ lead or 'T' }}",
      eos: [EOS],
      // T -> "OK" <tool_call> \n HEAD ARGS </tool_call> <|end|>; N -> "Hi" <|end|>.
      next: [
        ...preferences(263),
        [c("T"), c("O"), 10],
        [c("O"), c("K"), 10],
        [c("K"), OPEN, 10],
        [OPEN, c("\n"), 10],
        [c("\n"), HEAD, 10],
        [HEAD, ARGS, 10],
        [ARGS, CLOSE, 10],
        [CLOSE, EOS, 10],
        [c("N"), c("H"), 10],
        [c("H"), c("i"), 10],
        [c("i"), EOS, 10],
      ],
    });
    s = await startServer({ model: dir });
  });
  after(() => s.close());

  it("without strict, the model's own call comes back (a city the schema does not allow)", async () => {
    const r = await ask(s, { tools: [weather(false)] });
    assert.deepEqual(r.calls, [["get_weather", { city: "Paris" }]]);
    assert.equal(r.content, "OK");
  });

  it("strict: the call's arguments are a value of the tool's schema, the text before it the model's own", async () => {
    const r = await ask(s, { tools: [weather(true)] });
    assert.equal(r.content, "OK", "text outside calls is drawn freely");
    assert.equal(r.calls.length, 1);
    const [name, args] = r.calls[0]!;
    assert.equal(name, "get_weather");
    assert.ok(["Lyon", "Nice"].includes(args.city), JSON.stringify(args));
    assert.ok(Number.isInteger(args.days), JSON.stringify(args));
    assert.deepEqual(Object.keys(args), ["city", "days"]);
    assert.equal(r.finish, "tool_calls");
  });

  it("strict: a call of a tool the request does not offer becomes a call of one it does", async () => {
    const forecast = { type: "function" as const, function: { name: "get_forecast" } };
    const free = await ask(s, { tools: [clock(false), forecast] });
    assert.deepEqual(free.calls, [["get_weather", { city: "Paris" }]], "the model calls what it likes");
    const r = await ask(s, { tools: [clock(true), forecast] });
    assert.equal(r.calls.length, 1);
    const [name, args] = r.calls[0]!;
    assert.ok(name === "get_forecast" || name === "get_time", name);
    // The strict tool's arguments follow its schema; the other takes any object.
    if (name === "get_time") assert.deepEqual(args, { zone: "UTC" });
    else assert.equal(typeof args, "object");
  });

  it("strict with tool_choice named: the prompt opens the call and its arguments follow the schema", async () => {
    const r = await ask(s, {
      tools: [weather(true, ["Oslo"]), clock(true)],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      chat_template_kwargs: { lead: "N" },
    });
    assert.equal(r.calls.length, 1);
    assert.equal(r.calls[0]![0], "get_weather");
    assert.equal(r.calls[0]![1].city, "Oslo");
    // The second tool named: its own schema, not the first's.
    const t = await ask(s, {
      tools: [weather(true, ["Oslo"]), clock(true)],
      tool_choice: { type: "function", function: { name: "get_time" } },
      chat_template_kwargs: { lead: "N" },
    });
    assert.deepEqual(t.calls, [["get_time", { zone: "UTC" }]]);
  });

  it("schemas the constraint cannot draw are refused, naming the tool", async () => {
    const bad = {
      type: "function",
      function: { name: "f", parameters: { type: "string", pattern: "^a" }, strict: true },
    };
    await expectBadRequests(`${s.url}/v1/chat/completions`, { model: s.engine.model.id, messages: ASK }, [
      [{ tools: [weather(false), bad] }, "tools[1].function.parameters", /pattern/],
    ]);
  });
});

describe("strict tools as Llama 3 JSON (real engine): a call is the whole reply", () => {
  let s: LiveServer;
  before(async () => {
    const dir = path.join(tmp, "llama3");
    writeSuccessorModel(dir, withRows(LLAMA3_MODEL, preferences(261)));
    s = await startServer({ model: dir });
  });
  after(() => s.close());

  it("the model's call drawn under the schema, and the reply ends with it", async () => {
    assert.deepEqual((await ask(s, { tools: [weather(false)] })).calls, [["get_weather", { city: "Paris" }]]);
    const r = await ask(s, { tools: [weather(true)] });
    assert.equal(r.calls.length, 1);
    assert.ok(["Lyon", "Nice"].includes(r.calls[0]![1].city));
    assert.equal(r.finish, "tool_calls");
  });

  it("a reply that starts as text stays free text", async () => {
    const r = await ask(s, { tools: [weather(true)], chat_template_kwargs: { lead: "N" } });
    assert.deepEqual([r.content, r.calls, r.finish], ["Hi", [], "stop"]);
  });
});

describe("strict tools after Mistral's [TOOL_CALLS] (a JSON list of calls, real engine)", () => {
  let s: LiveServer;
  before(async () => {
    const dir = path.join(tmp, "mistral");
    writeSuccessorModel(dir, withRows(MISTRAL_MODEL, preferences(261)));
    s = await startServer({ model: dir });
  });
  after(() => s.close());

  it("the list's calls are drawn under the schemas, and the reply ends with the list", async () => {
    assert.deepEqual((await ask(s, { tools: [weather(false)] })).calls, [["get_weather", { city: "Paris" }]]);
    const r = await ask(s, { tools: [weather(true)] });
    assert.ok(r.calls.length >= 1);
    for (const [name, args] of r.calls) {
      assert.equal(name, "get_weather");
      assert.ok(["Lyon", "Nice"].includes(args.city), JSON.stringify(args));
    }
    assert.equal(r.finish, "tool_calls");
  });
});

describe("strict tools in harmony (gpt-oss-style model, real engine)", () => {
  let s: LiveServer;
  before(async () => {
    const dir = path.join(tmp, "harmony");
    writeSuccessorModel(dir, withRows(HARMONY_MODEL, preferences(269)));
    s = await startServer({ model: dir });
  });
  after(() => s.close());

  it("a message to a strict tool has that tool's arguments; a function not offered is not called", async () => {
    assert.deepEqual((await ask(s, { tools: [weather(false)] })).calls, [["get_weather", { city: "Paris" }]]);
    const r = await ask(s, { tools: [weather(true)] });
    assert.equal(r.calls.length, 1);
    assert.equal(r.calls[0]![0], "get_weather");
    assert.ok(["Lyon", "Nice"].includes(r.calls[0]![1].city), JSON.stringify(r.calls[0]![1]));
    assert.equal(r.finish, "tool_calls");
    const t = await ask(s, { tools: [clock(true)] });
    assert.deepEqual(t.calls, [["get_time", { zone: "UTC" }]]);
  });

  it("tool_choice named: the prompt opens the call and its body follows the tool's schema", async () => {
    const r = await ask(s, {
      tools: [weather(true), clock(true)],
      tool_choice: { type: "function", function: { name: "get_time" } },
    });
    assert.deepEqual(r.calls, [["get_time", { zone: "UTC" }]]);
  });
});

describe("strict tools as Mistral's [TOOL_CALLS]NAME[ARGS]{...} (real engine)", () => {
  const [TOOL_CALLS, ARGS_MARK, EOS, NAME, ARGS] = [258, 259, 260, 261, 262];
  let s: LiveServer;
  before(async () => {
    const dir = path.join(tmp, "mistral-args");
    writeSuccessorModel(dir, {
      added: [
        { content: "[TOOL_CALLS]", special: true },
        { content: "[ARGS]", special: true },
        { content: "</s>", special: true },
        { content: "get_weather", special: false },
        { content: '{"city": "Paris"}', special: false },
      ],
      template: "{% for m in messages %}{{ m.content }}|{% endfor %}{% if tools %}[TOOL_CALLS]{% endif %}T",
      eos: [EOS],
      next: [
        ...preferences(263),
        // After a call's arguments (a closing brace), the reply ends, as a trained model's does.
        [c("}"), EOS, 5],
        [c("T"), TOOL_CALLS, 10],
        [TOOL_CALLS, NAME, 10],
        [NAME, ARGS_MARK, 10],
        [ARGS_MARK, ARGS, 10],
        [ARGS, EOS, 10],
      ],
    });
    s = await startServer({ model: dir });
  });
  after(() => s.close());

  it("the name is one of the tools' and the arguments follow its schema", async () => {
    assert.deepEqual((await ask(s, { tools: [weather(false)] })).calls, [["get_weather", { city: "Paris" }]]);
    const r = await ask(s, { tools: [weather(true)] });
    assert.equal(r.calls.length, 1);
    assert.equal(r.calls[0]![0], "get_weather");
    assert.ok(["Lyon", "Nice"].includes(r.calls[0]![1].city), JSON.stringify(r.calls[0]![1]));
    // get_weather is not offered: the name is spelled as the one tool there is.
    assert.deepEqual((await ask(s, { tools: [clock(true)] })).calls, [["get_time", { zone: "UTC" }]]);
    const named = await ask(s, {
      tools: [weather(true), clock(true)],
      tool_choice: { type: "function", function: { name: "get_time" } },
    });
    assert.deepEqual(named.calls, [["get_time", { zone: "UTC" }]]);
  });
});

describe("strict tools where the call's tags are not single tokens", () => {
  let s: LiveServer;
  before(async () => {
    const dir = path.join(tmp, "hermes-split-tags");
    writeSuccessorModel(dir, {
      added: [{ content: "</s>", special: true }],
      template:
        "{% for m in messages %}{{ m.content }}{% endfor %}{% if tools %}Call with <tool_call>.{% endif %}",
      eos: [258],
      next: [],
    });
    s = await startServer({ model: dir });
  });
  after(() => s.close());

  it("are refused, naming the formats strict calls are drawn for", async () => {
    await expectBadRequests(`${s.url}/v1/chat/completions`, { model: s.engine.model.id, messages: ASK }, [
      [
        { tools: [weather(true)] },
        "tools",
        /not single tokens.*strict calls are drawn for Hermes <tool_call> tags/,
      ],
    ]);
    const free = await ask(s, { tools: [weather(false)], max_tokens: 2 });
    assert.equal(free.calls.length, 0, "without strict the same request is served");
  });
});
