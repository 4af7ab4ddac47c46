// Reading tool calls out of chat replies, piece by piece: Hermes tags (Qwen's templates), Llama 3's
// JSON calls, gpt-oss's harmony messages to functions and Mistral's [TOOL_CALLS] (both its forms),
// however the reply is cut into events;
// which format a template teaches; and a conversation with calls and results through a template.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { templateToolCalls } from "../../src/server/chat-reply.js";
import { HarmonyStream, harmonyMarkers } from "../../src/server/harmony.js";
import { MistralCallStream, mistralMarkers } from "../../src/server/mistral-calls.js";
import { HermesCallReader, JsonCallReader, type ToolCallReader } from "../../src/server/tool-call-text.js";
import { parseCallJson, splitJsonObjects, toolCallFormat } from "../../src/server/tool-calls.js";
import { loadHfTokenizer } from "../../src/tokenizer/hf-tokenizer.js";
import { writeSuccessorTokenizer } from "../helpers/successor-model.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-tool-readers-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The whole text through a reader in pieces of `cut` characters: content and calls added up. */
function readInPieces(make: () => ToolCallReader, text: string, cut: number) {
  const r = make();
  let content = "";
  const calls: { name: string; arguments: string }[] = [];
  for (let i = 0; i < text.length; i += cut) {
    const t = r.push(text.slice(i, i + cut));
    content += t.content;
    calls.push(...t.calls);
  }
  const t = r.flush();
  return { content: content + t.content, calls: [...calls, ...t.calls] };
}

const CUTS = [1, 2, 3, 7, 1000];

describe("Hermes tool-call tags", () => {
  const hermes = () => new HermesCallReader();

  it("calls out of the text, content around them, in any pieces", () => {
    const text =
      'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n' +
      '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>';
    for (const cut of CUTS) {
      assert.deepEqual(
        readInPieces(hermes, text, cut),
        {
          content: "Let me check.\n",
          calls: [
            { name: "get_weather", arguments: '{"city":"Paris"}' },
            { name: "get_time", arguments: "{}" },
          ],
        },
        `pieces of ${cut}`,
      );
    }
  });

  it("text that only starts like a tag is shown once it is not one", () => {
    const r = hermes();
    assert.deepEqual(r.push("a <tool"), { content: "a ", calls: [] });
    assert.deepEqual(r.push("box> b"), { content: "<toolbox> b", calls: [] });
  });

  it("a block that is not a call, and one cut off, stay content with their tags", () => {
    for (const cut of CUTS) {
      const bad = "x<tool_call>not json</tool_call>y";
      assert.deepEqual(readInPieces(hermes, bad, cut), { content: bad, calls: [] });
      const cutOff = 'x<tool_call>{"name": "f", "argu';
      assert.deepEqual(readInPieces(hermes, cutOff, cut), { content: cutOff, calls: [] });
    }
  });

  it("a call the reply ended without closing is still read when its JSON is whole", () => {
    assert.deepEqual(readInPieces(hermes, '<tool_call>{"name": "f", "arguments": {"a": [1, 2]}}', 4), {
      content: "",
      calls: [{ name: "f", arguments: '{"a":[1,2]}' }],
    });
  });
});

describe("Llama 3 JSON calls", () => {
  const json = () => new JsonCallReader();

  it("a reply that is calls, alone or joined by ';', in any pieces", () => {
    for (const cut of CUTS) {
      assert.deepEqual(readInPieces(json, ' {"name": "f", "parameters": {"q": "a;b}"}}', cut), {
        content: "",
        calls: [{ name: "f", arguments: '{"q":"a;b}"}' }],
      });
      assert.deepEqual(
        readInPieces(json, '{"name": "f", "parameters": {}}; {"name": "g", "arguments": {"x": 1}}', cut),
        {
          content: "",
          calls: [
            { name: "f", arguments: "{}" },
            { name: "g", arguments: '{"x":1}' },
          ],
        },
      );
    }
  });

  it("other replies are content as they come; JSON that is not a call is content at the end", () => {
    const r = json();
    assert.deepEqual(r.push("  "), { content: "", calls: [] });
    assert.deepEqual(r.push("Hi {"), { content: "  Hi {", calls: [] });
    assert.deepEqual(r.flush(), { content: "", calls: [] });
    for (const text of ['{"answer": 42}', '{"name": "f", "parameters": {}} and more', '{"name": "f"']) {
      assert.deepEqual(readInPieces(json, text, 3), { content: text, calls: [] });
    }
  });

  it("splits objects joined by whitespace or ';' only, braces in strings not counted", () => {
    assert.deepEqual(splitJsonObjects('{"a": "}{"} ; {"b": [{}]}'), ['{"a": "}{"}', '{"b": [{}]}']);
    assert.equal(splitJsonObjects('{"a": 1} x'), null);
    assert.equal(splitJsonObjects('{"a": "\\"}'), null);
    assert.equal(splitJsonObjects("   "), null);
  });

  it("a call's JSON: a name, and arguments (or parameters) that are an object or text", () => {
    assert.deepEqual(parseCallJson('{"name": "f", "arguments": "{\\"x\\": 1}"}'), {
      name: "f",
      arguments: '{"x": 1}',
    });
    assert.deepEqual(parseCallJson('{"name": "f"}'), { name: "f", arguments: "{}" });
    for (const bad of ['{"name": ""}', '{"arguments": {}}', '{"name": "f", "arguments": [1]}', "[1]", "x"])
      assert.equal(parseCallJson(bad), null, bad);
  });
});

describe("harmony messages to functions", () => {
  const dir = path.join(tmp, "harmony");
  writeSuccessorTokenizer(dir, {
    added: ["<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>", "<|call|>"].map(
      (content) => ({
        content,
        special: true,
      }),
    ),
    template: "{% for m in messages %}{{ m.content }}{% endfor %}<|start|>assistant",
    eos: [],
  });
  const tokenizer = loadHfTokenizer(dir);
  const ids = (text: string) => tokenizer.encode(text, { addSpecialTokens: false });
  const reply = ids(
    "<|channel|>analysis<|message|>need weather<|end|>" +
      '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>',
  );

  it("with tools offered, a body addressed to a function is a call; without, content", () => {
    for (const cut of [1, 4, reply.length]) {
      const s = new HarmonyStream(tokenizer, harmonyMarkers(tokenizer)!, true);
      const parts = { reasoning: "", content: "", calls: [] as unknown[] };
      const pieces = [];
      for (let i = 0; i < reply.length; i += cut) pieces.push(reply.slice(i, i + cut));
      for (let i = 0; i <= pieces.length; i++) {
        const t = i < pieces.length ? s.push(pieces[i]!) : s.flush();
        parts.reasoning += t.reasoning;
        parts.content += t.content;
        parts.calls.push(...(t.calls ?? []));
      }
      assert.deepEqual(parts, {
        reasoning: "need weather",
        content: "",
        calls: [{ name: "get_weather", arguments: '{"city": "Paris"}' }],
      });
    }
    const plain = new HarmonyStream(tokenizer, harmonyMarkers(tokenizer)!);
    const t = plain.push(reply);
    assert.deepEqual([t.content, t.calls], ['{"city": "Paris"}', undefined]);
  });

  it("a call cut off before <|call|> is content", () => {
    const s = new HarmonyStream(tokenizer, harmonyMarkers(tokenizer)!, true);
    const t = s.push(ids('<|channel|>commentary to=functions.f<|message|>{"a": '));
    const rest = s.flush();
    assert.deepEqual([t.content + rest.content, rest.calls], ['{"a": ', undefined]);
  });
});

describe("Mistral's [TOOL_CALLS]", () => {
  const dir = path.join(tmp, "mistral");
  writeSuccessorTokenizer(dir, {
    added: ["[TOOL_CALLS]", "[ARGS]"].map((content) => ({ content, special: true })),
    template: "{% for m in messages %}{{ m.content }}{% endfor %}[TOOL_CALLS]",
    eos: [],
  });
  const tokenizer = loadHfTokenizer(dir);
  const markers = mistralMarkers(tokenizer)!;
  const ids = (text: string) => tokenizer.encode(text, { addSpecialTokens: false });
  const read = (text: string, cut: number) => {
    const reply = ids(text);
    const s = new MistralCallStream(tokenizer, markers);
    const parts = { content: "", calls: [] as unknown[] };
    const pieces = [];
    for (let i = 0; i < reply.length; i += cut) pieces.push(reply.slice(i, i + cut));
    for (let i = 0; i <= pieces.length; i++) {
      const t = i < pieces.length ? s.push(pieces[i]!) : s.flush();
      parts.content += t.content;
      parts.calls.push(...(t.calls ?? []));
    }
    return parts;
  };

  it("a JSON list after the token (v3), or NAME[ARGS]{...} a call (later tokenizers), in any pieces", () => {
    const calls = [
      { name: "get_weather", arguments: '{"city":"Paris"}' },
      { name: "get_time", arguments: "{}" },
    ];
    for (const cut of [1, 3, 1000]) {
      assert.deepEqual(
        read(
          'Sure.[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": {}}]',
          cut,
        ),
        { content: "Sure.", calls },
      );
      assert.deepEqual(
        read('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{}', cut),
        {
          content: "",
          calls,
        },
      );
    }
  });

  it("is the format of a template that writes [TOOL_CALLS] with the token in its vocabulary", () => {
    assert.equal(toolCallFormat(tokenizer), "mistral");
  });

  it("what does not read as calls is content", () => {
    assert.deepEqual(read("a[TOOL_CALLS] [not json", 2), { content: "a [not json", calls: [] });
    assert.deepEqual(read("[TOOL_CALLS]bad name[ARGS]{}", 2), { content: "bad name{}", calls: [] });
  });
});

describe("which format a template teaches", () => {
  const format = (name: string, template: string) => {
    const dir = path.join(tmp, name);
    writeSuccessorTokenizer(dir, { added: [], template, eos: [] });
    return toolCallFormat(loadHfTokenizer(dir));
  };

  it("Hermes tags, Llama 3's JSON, or none", () => {
    assert.equal(format("qwen", "{% if tools %}<tool_call>{% endif %}{{ messages[0].content }}"), "hermes");
    assert.equal(
      format(
        "llama",
        '{% if tools %}{"name": function name, "parameters": dictionary of argument name{% endif %}',
      ),
      "llama3-json",
    );
    assert.equal(format("llama31", "{{ '<|python_tag|>' }}"), "llama3-json");
    assert.equal(format("plain", "{% for m in messages %}{{ m.content }}{% endfor %}"), null);
  });

  it("a conversation's calls and results reach the template, arguments as objects", () => {
    const dir = path.join(tmp, "render");
    writeSuccessorTokenizer(dir, {
      added: [],
      template:
        "{% for t in tools %}[{{ t.function.name }}]{% endfor %}" +
        "{% for m in messages %}{{ m.role }}:{{ m.content }}" +
        "{% for c in m.tool_calls or [] %}<{{ c.id }} {{ c.function.name }} {{ c.function.arguments.city }}" +
        " {{ c.function.arguments is string }}>{% endfor %}" +
        "{% if m.tool_call_id %}#{{ m.tool_call_id }}{% endif %}|{% endfor %}",
      eos: [],
    });
    const tok = loadHfTokenizer(dir);
    const calls = templateToolCalls([
      { id: "c1", function: { name: "get_weather", arguments: '{"city": "Paris"}' } },
      { id: "c2", function: { name: "raw", arguments: "not json" } },
    ]);
    const text = tok.applyChatTemplate(
      [
        { role: "user", content: "weather?" },
        { role: "assistant", content: "", tool_calls: calls },
        { role: "tool", content: "sunny", tool_call_id: "c1" },
      ],
      { variables: { tools: [{ type: "function", function: { name: "get_weather" } }] } },
    );
    assert.equal(
      text,
      "[get_weather]user:weather?|assistant:<c1 get_weather Paris false><c2 raw  true>|tool:sunny#c1|",
    );
  });
});
