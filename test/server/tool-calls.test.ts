// Tool calls through /v1/chat/completions on real engines: the tools reach the chat template, the
// calls the model writes come back as tool_calls (finish_reason "tool_calls"), streamed or whole,
// for Hermes tags (Qwen's templates), Llama 3's JSON, gpt-oss's harmony and Mistral's
// [TOOL_CALLS] (with the 9-character ids its templates demand); tool_choice "none",
// "required" and a named function change what the model is shown and made to write;
// parallel_tool_calls false keeps one call; bad requests get a 400 naming the field. Each model
// answers from a successor table (successor-model.ts): its last prompt token picks the reply.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { writeSuccessorModel } from "../helpers/successor-model.js";
import { HARMONY_MODEL, LLAMA3_MODEL, MISTRAL_MODEL } from "../helpers/tool-call-models.js";
import { type Body, chatOnce, expectBadRequests } from "./chat-request.js";
import { type LiveServer, postRaw, startServer } from "./helpers.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-tool-calls-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const c = (ch: string) => ch.charCodeAt(0);
const WEATHER = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const ASK = [{ role: "user" as const, content: "weather in Paris?" }];

type Call = { id: string; type: string; function: { name: string; arguments: string } };
type Message = { content: string | null; tool_calls?: Call[]; reasoning_content?: string };

/** A streamed reply added up: content, the calls (by index, arguments joined) and the finish reason. */
async function streamed(s: LiveServer, body: Record<string, unknown>) {
  const stream = await s.client.chat.completions.create({
    model: s.engine.model.id,
    messages: ASK,
    temperature: 0,
    stream: true,
    ...body,
  } as unknown as Parameters<typeof s.client.chat.completions.create>[0] & { stream: true });
  let content = "";
  const calls: { name: string; arguments: string }[] = [];
  let finish: string | null = null;
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    content += choice?.delta.content ?? "";
    for (const t of choice?.delta.tool_calls ?? []) {
      calls[t.index] ??= { name: "", arguments: "" };
      calls[t.index]!.name += t.function?.name ?? "";
      calls[t.index]!.arguments += t.function?.arguments ?? "";
    }
    finish = choice?.finish_reason ?? finish;
  }
  return { content, calls, finish };
}

async function whole(s: LiveServer, body: Body) {
  const { choice } = await chatOnce(s, { messages: ASK, ...body });
  return { message: choice.message as unknown as Message, finish: choice.finish_reason };
}

const callsOf = (m: Message) =>
  (m.tool_calls ?? []).map((t) => [t.type, t.function.name, t.function.arguments]);

describe("tool calls in Hermes tags (Qwen-style template, real engine)", () => {
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
      // The prompt ends "T" when the template was given tools (or the lead a kwarg names), else "N".
      template:
        "{% if tools %}{% for t in tools %}{{ t.function.name }}:{{ t.function.parameters | tojson }};{% endfor %}" +
        "Call with <tool_call>.{% endif %}{% for m in messages %}{{ m.role }}:{{ m.content }}|{% endfor %}" +
        "{% if tools %}{{ lead or 'T' }}{% else %}N{% endif %}",
      eos: [EOS],
      // T -> <tool_call> \n HEAD ARGS </tool_call> <|end|> (runner-up after the close: another call);
      // N -> "Hi" <|end|>; P -> "OK" then the call.
      next: [
        [c("T"), OPEN, 10],
        [OPEN, c("\n"), 10],
        [c("\n"), HEAD, 10],
        [HEAD, ARGS, 10],
        [ARGS, CLOSE, 10],
        [CLOSE, EOS, 10],
        [CLOSE, OPEN, 9],
        [c("N"), c("H"), 10],
        [c("H"), c("i"), 10],
        [c("i"), EOS, 10],
        [c("P"), c("O"), 10],
        [c("O"), c("K"), 10],
        [c("K"), OPEN, 10],
      ],
    });
    s = await startServer({ model: dir });
  });
  after(() => s.close());

  it("a call comes back as tool_calls with finish_reason tool_calls, content null", async () => {
    const { message, finish } = await whole(s, { tools: [WEATHER] });
    assert.deepEqual(callsOf(message), [["function", "get_weather", '{"city":"Paris"}']]);
    assert.equal(message.content, null);
    assert.equal(finish, "tool_calls");
    assert.match(message.tool_calls![0]!.id, /^call_[0-9a-f]{24}$/);
  });

  it("text before a call is content; streamed deltas add up to the same reply", async () => {
    const body = { tools: [WEATHER], chat_template_kwargs: { lead: "P" } };
    const { message, finish } = await whole(s, body);
    assert.deepEqual(
      [message.content, callsOf(message), finish],
      ["OK", [["function", "get_weather", '{"city":"Paris"}']], "tool_calls"],
    );
    assert.deepEqual(await streamed(s, body), {
      content: "OK",
      calls: [{ name: "get_weather", arguments: '{"city":"Paris"}' }],
      finish: "tool_calls",
    });
  });

  it("without tools, or with tool_choice none, the template is not shown them and the reply is content", async () => {
    for (const body of [{}, { tools: [WEATHER], tool_choice: "none" }]) {
      const { message, finish } = await whole(s, body);
      assert.deepEqual([message.content, message.tool_calls, finish], ["Hi", undefined, "stop"]);
    }
  });

  it("tool_choice required or a named function makes a model that would answer call instead", async () => {
    const lead = { chat_template_kwargs: { lead: "N" } };
    assert.equal((await whole(s, { tools: [WEATHER], ...lead })).message.content, "Hi");
    for (const tool_choice of ["required", { type: "function", function: { name: "get_weather" } }]) {
      const { message, finish } = await whole(s, { tools: [WEATHER], tool_choice, ...lead });
      assert.deepEqual(
        [message.content, callsOf(message), finish],
        [null, [["function", "get_weather", '{"city":"Paris"}']], "tool_calls"],
      );
      const st = await streamed(s, { tools: [WEATHER], tool_choice, ...lead });
      assert.deepEqual(st.calls, [{ name: "get_weather", arguments: '{"city":"Paris"}' }]);
    }
  });

  it("parallel_tool_calls false keeps the first of several calls", async () => {
    // A bias against <|end|> makes the runner-up (another call) follow each call: two in 10 tokens.
    const body = { tools: [WEATHER], logit_bias: { [String(EOS)]: -100 }, max_tokens: 10 };
    assert.equal(callsOf((await whole(s, body)).message).length, 2);
    const one = await whole(s, { ...body, parallel_tool_calls: false });
    assert.deepEqual([callsOf(one.message).length, one.finish], [1, "length"]);
    const st = await streamed(s, { ...body, parallel_tool_calls: false });
    assert.equal(st.calls.length, 1);
  });

  it("a conversation with a call and its result is served (arguments back as JSON text)", async () => {
    const { message } = await whole(s, {
      tools: [WEATHER],
      messages: [
        ...ASK,
        {
          role: "assistant",
          content: null,
          tool_calls: [
            {
              id: "call_1",
              type: "function",
              function: { name: "get_weather", arguments: '{"city":"Paris"}' },
            },
          ],
        },
        { role: "tool", tool_call_id: "call_1", content: "sunny" },
      ],
    });
    assert.equal(callsOf(message).length, 1);
  });

  it("bad tool requests get a 400 naming the field", async () => {
    const url = `${s.url}/v1/chat/completions`;
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ tool_choice: "auto" }, "tool_choice", /needs tools/],
      [
        { tools: [WEATHER], tool_choice: { type: "function", function: { name: "other" } } },
        "tool_choice",
        /not among/,
      ],
      [
        { tools: [{ type: "function", function: { name: "bad name" } }] },
        "tools[0].function.name",
        /letters/,
      ],
      [
        {
          tools: [
            { ...WEATHER, function: { ...WEATHER.function, strict: true, parameters: { minProperties: 1 } } },
          ],
        },
        "tools[0].function.parameters",
        /minProperties/,
      ],
      [{ tools: [] }, "tools", /./],
      [{ tools: [WEATHER], tool_choice: "sometimes" }, "tool_choice", /"none", "auto", "required"/],
    ];
    await expectBadRequests(url, { messages: ASK }, cases);
  });
});

describe("tool calls as Llama 3 JSON (real engine)", () => {
  let s: LiveServer;
  before(async () => {
    const dir = path.join(tmp, "llama3");
    writeSuccessorModel(dir, LLAMA3_MODEL);
    s = await startServer({ model: dir });
  });
  after(() => s.close());

  it("a reply that is a JSON call is tool_calls; one that is not is content, streamed as it comes", async () => {
    const { message, finish } = await whole(s, { tools: [WEATHER] });
    assert.deepEqual(
      [message.content, callsOf(message), finish],
      [null, [["function", "get_weather", '{"city":"Paris"}']], "tool_calls"],
    );
    assert.deepEqual(await streamed(s, { tools: [WEATHER] }), {
      content: "",
      calls: [{ name: "get_weather", arguments: '{"city":"Paris"}' }],
      finish: "tool_calls",
    });
    const plain = await streamed(s, { tools: [WEATHER], chat_template_kwargs: { lead: "N" } });
    assert.deepEqual(plain, { content: "Hi", calls: [], finish: "stop" });
  });

  it("a named function opens the call for the model", async () => {
    const { message } = await whole(s, {
      tools: [WEATHER],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      // The prompt would have the model answer "Hi"; after the opening the server adds
      // ({"name": "get_weather", "parameters": ) it writes the arguments.
      chat_template_kwargs: { lead: "N" },
    });
    assert.deepEqual(callsOf(message), [["function", "get_weather", '{"city":"Paris"}']]);
  });
});

describe("tool calls in harmony (gpt-oss-style model, real engine)", () => {
  let s: LiveServer;
  before(async () => {
    const dir = path.join(tmp, "harmony");
    writeSuccessorModel(dir, HARMONY_MODEL);
    s = await startServer({ model: dir });
  });
  after(() => s.close());

  it("a message to a function is a call when tools are offered, content otherwise", async () => {
    const { message, finish } = await whole(s, { tools: [WEATHER] });
    assert.deepEqual(
      [message.content, callsOf(message), finish],
      [null, [["function", "get_weather", '{"city": "Paris"}']], "tool_calls"],
    );
    const st = await streamed(s, { tools: [WEATHER] });
    assert.deepEqual(st, {
      content: "",
      calls: [{ name: "get_weather", arguments: '{"city": "Paris"}' }],
      finish: "tool_calls",
    });
    const plain = await whole(s, {});
    assert.deepEqual([plain.message.content, plain.message.tool_calls], ['{"city": "Paris"}', undefined]);
  });
});

describe("tool calls after Mistral's [TOOL_CALLS] (real engine)", () => {
  let s: LiveServer;
  before(async () => {
    const dir = path.join(tmp, "mistral");
    writeSuccessorModel(dir, MISTRAL_MODEL);
    s = await startServer({ model: dir });
  });
  after(() => s.close());

  it("the calls come back with ids Mistral's template takes back in the next turn", async () => {
    const { message, finish } = await whole(s, { tools: [WEATHER] });
    assert.deepEqual(
      [message.content, callsOf(message), finish],
      [null, [["function", "get_weather", '{"city":"Paris"}']], "tool_calls"],
    );
    const call = message.tool_calls![0]!;
    assert.match(call.id, /^[A-Za-z0-9]{9}$/);
    const st = await streamed(s, { tools: [WEATHER] });
    assert.deepEqual(st, {
      content: "",
      calls: [{ name: "get_weather", arguments: '{"city":"Paris"}' }],
      finish: "tool_calls",
    });
    const next = await whole(s, {
      tools: [WEATHER],
      messages: [
        ...ASK,
        { role: "assistant", content: null, tool_calls: [call] },
        { role: "tool", tool_call_id: call.id, content: "sunny" },
      ],
    });
    assert.equal(next.finish, "tool_calls");
    const refused = await postRaw(
      `${s.url}/v1/chat/completions`,
      JSON.stringify({
        tools: [WEATHER],
        messages: [...ASK, { role: "assistant", content: null, tool_calls: [{ ...call, id: "call_1" }] }],
      }),
    );
    assert.equal(refused.status, 400);
    assert.match(refused.json.error!.message, /length 9/);
  });
});
