// Qwen3's real tokenizer.json with its own chat template, end to end: the rendered multi-turn
// prompt encodes to ChatML's special-token ids around the ordinary vocabulary's ids, and the
// reasoning tags are single tokens that decoding keeps (Qwen3 marks them not special); tools, a
// call and its result render as Qwen3 was taught them, and the call format is read as Hermes tags.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { acceptToken, type JsonState, jsonComplete, jsonStart } from "../../src/engine/json-constraint.js";
import { toolCallNode } from "../../src/engine/tool-call-schema.js";
import { templateToolCalls } from "../../src/server/chat-reply.js";
import { toolUse } from "../../src/server/chat-tools.js";
import { HermesCallReader } from "../../src/server/tool-call-text.js";
import { toolCallFormat } from "../../src/server/tool-calls.js";
import { loadHfTokenizer } from "../../src/tokenizer/index.js";
import { tokenizerDir } from "./fixtures.js";

const IM_START = 151644;
const IM_END = 151645;
const THINK = 151667;
const END_THINK = 151668;
// Qwen2/3 vocabulary: "user", "assistant", "\n", "\n\n".
const USER = 872;
const ASSISTANT = 77091;
const NL = 198;
const NL2 = 271;

describe("Qwen3's tokenizer and chat template together", () => {
  const qwen3 = loadHfTokenizer(tokenizerDir("tokenizer-qwen3"));

  it("a reasoning turn followed by a question renders and encodes to ChatML's ids", () => {
    const text = qwen3.applyChatTemplate(
      [
        { role: "user", content: "2+2?" },
        { role: "assistant", content: "<think>\nadd\n</think>\n\n4" },
        { role: "user", content: "and 3+3?" },
      ],
      { addGenerationPrompt: true },
    );
    const ids = qwen3.encode(text, { addSpecialTokens: false });
    assert.deepEqual(ids.slice(0, 3), [IM_START, USER, NL]);
    assert.deepEqual(ids.slice(-3), [IM_START, ASSISTANT, NL]);
    assert.equal(ids.filter((i) => i === IM_START).length, 4);
    assert.equal(ids.filter((i) => i === IM_END).length, 3);
    assert.ok(!ids.includes(THINK), "earlier turns' reasoning is dropped by the template");
    // Decoding skips ChatML's special tokens and nothing else.
    assert.equal(qwen3.decode(ids), "user\n2+2?\nassistant\n4\nuser\nand 3+3?\nassistant\n");
  });

  it("the reasoning tags are single tokens that decoding keeps", () => {
    const ids = qwen3.encode("<think>\n\n</think>\n\n6", { addSpecialTokens: false });
    assert.deepEqual(ids.slice(0, 3), [THINK, NL2, END_THINK]);
    assert.equal(qwen3.decode(ids), "<think>\n\n</think>\n\n6");
    assert.ok(qwen3.eosTokenIds.includes(IM_END));
  });

  it("tools, a call and its result render as Qwen3's template teaches, and its calls read back", () => {
    assert.equal(toolCallFormat(qwen3), "hermes");
    const tool = { type: "function", function: { name: "get_weather", parameters: { type: "object" } } };
    const text = qwen3.applyChatTemplate(
      [
        { role: "user", content: "weather in Paris?" },
        {
          role: "assistant",
          content: "",
          tool_calls: templateToolCalls([
            { id: "call_1", function: { name: "get_weather", arguments: '{"city": "Paris"}' } },
          ]),
        },
        { role: "tool", content: "sunny", tool_call_id: "call_1" },
      ],
      { addGenerationPrompt: true, variables: { tools: [tool] } },
    );
    // As Python's json.dumps writes it (transformers renders these templates).
    const listed =
      '{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}';
    assert.ok(text.includes(`<tools>\n${listed}\n</tools>`), text);
    const call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';
    assert.ok(text.includes(call), text);
    assert.ok(text.includes("<tool_response>\nsunny\n</tool_response>"), text);
    // The tags are single tokens decoding keeps, so the reply's text holds them for the reader.
    const ids = qwen3.encode(call, { addSpecialTokens: false });
    assert.equal(qwen3.decode(ids), call);
    const r = new HermesCallReader();
    const t = r.push(qwen3.decode(ids));
    assert.deepEqual(t.calls, [{ name: "get_weather", arguments: '{"city":"Paris"}' }]);
  });
});

describe("strict tools on Qwen3's vocabulary", () => {
  const qwen3 = loadHfTokenizer(tokenizerDir("tokenizer-qwen3"));
  const tools = [
    {
      type: "function" as const,
      function: {
        name: "get_weather",
        parameters: { type: "object", properties: { city: { enum: ["Lyon", "Nice"] } }, required: ["city"] },
        strict: true,
      },
    },
  ];

  it("opens at the <tool_call> token, closes at </tool_call>, and takes Qwen's tokens of a call that follows the schema", () => {
    const use = toolUse(qwen3, { tools });
    const c = use!.constraint!;
    assert.deepEqual([c.open, c.close, c.argsKey, c.list], [151657, 151658, "arguments", false]);
    const walk = (call: string) => {
      let s: JsonState | null = jsonStart(toolCallNode(c));
      for (const t of qwen3.encode(call, { addSpecialTokens: false })) {
        s = acceptToken(s, t, qwen3.pieces!, () => false);
        if (!s) return null;
      }
      return s;
    };
    assert.ok(jsonComplete(walk('{"name": "get_weather", "arguments": {"city": "Lyon"}}')!));
    assert.equal(walk('{"name": "get_weather", "arguments": {"city": "Paris"}}'), null);
    assert.equal(walk('{"name": "get_time"'), null);
  });
});
