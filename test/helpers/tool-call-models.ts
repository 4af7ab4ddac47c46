import type { SuccessorModel } from "./successor-model.js";

// Successor models (successor-model.ts) taught a tool-call format: each answers "weather?" with a
// call of get_weather for Paris, in its format. The tool-call and strict-tool tests share them;
// a test adds rows of its own in front of `next` (the table's later rows win).

const c = (ch: string) => ch.charCodeAt(0);

/**
 * Llama 3's JSON calls: "T" (tools given) -> " " {"name": "get_weather", "parameters": ...} <|eot_id|>;
 * "N" (the lead a kwarg names, or no tools) -> "Hi" <|eot_id|>.
 */
export const LLAMA3_IDS = { HEAD: 258, ARGS: 259, EOT: 260 } as const;
export const LLAMA3_MODEL: SuccessorModel = {
  added: [
    { content: '{"name": "get_weather", "parameters": ', special: false },
    { content: '{"city": "Paris"}}', special: false },
    { content: "<|eot_id|>", special: true },
  ],
  template:
    '{% if tools %}Reply {"name": function name, "parameters": dictionary of argument name and its value}.' +
    "{% endif %}{% for m in messages %}{{ m.content }}|{% endfor %}{% if tools %}{{ lead or 'T' }}{% else %}N{% endif %}",
  eos: [LLAMA3_IDS.EOT],
  next: [
    [c("T"), c(" "), 10],
    [c(" "), LLAMA3_IDS.HEAD, 10],
    [LLAMA3_IDS.HEAD, LLAMA3_IDS.ARGS, 10],
    [LLAMA3_IDS.ARGS, LLAMA3_IDS.EOT, 10],
    [c("N"), c("H"), 10],
    [c("H"), c("i"), 10],
    [c("i"), LLAMA3_IDS.EOT, 10],
  ],
};

const HARMONY_MARKERS = ["<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>", "<|call|>"];
/**
 * gpt-oss's harmony: <|channel|>commentary, a header to get_weather (to get_time the runner-up),
 * <|message|>, the arguments naming Paris, <|call|>.
 */
export const HARMONY_IDS = {
  CHANNEL: 259,
  MESSAGE: 260,
  RETURN: 262,
  CALL: 263,
  COMMENTARY: 264,
  TO: 265,
  TO_TIME: 266,
  ARGS: 267,
  ASSISTANT: 268,
} as const;
export const HARMONY_MODEL: SuccessorModel = {
  added: [
    ...HARMONY_MARKERS.map((content) => ({ content, special: true })),
    ...[
      "commentary",
      " to=functions.get_weather",
      " to=functions.get_time",
      '{"city": "Paris"}',
      "assistant",
    ].map((content) => ({ content, special: false })),
  ],
  template:
    "{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{% endfor %}" +
    "<|start|>assistant",
  eos: [HARMONY_IDS.RETURN, HARMONY_IDS.CALL],
  next: [
    [HARMONY_IDS.ASSISTANT, HARMONY_IDS.CHANNEL, 10],
    [HARMONY_IDS.CHANNEL, HARMONY_IDS.COMMENTARY, 10],
    [HARMONY_IDS.COMMENTARY, HARMONY_IDS.TO, 10],
    [HARMONY_IDS.COMMENTARY, HARMONY_IDS.TO_TIME, 9],
    [HARMONY_IDS.TO, HARMONY_IDS.MESSAGE, 10],
    [HARMONY_IDS.TO_TIME, HARMONY_IDS.MESSAGE, 10],
    [HARMONY_IDS.MESSAGE, HARMONY_IDS.ARGS, 10],
    [HARMONY_IDS.ARGS, HARMONY_IDS.CALL, 10],
  ],
};

/**
 * Mistral's [TOOL_CALLS] and a JSON list of calls: "T" -> [TOOL_CALLS] " " [get_weather(Paris)]
 * <|eos|>; "N" -> "Hi". As Mistral's templates do, ids that are not 9 characters are refused.
 */
export const MISTRAL_IDS = { TOOL_CALLS: 258, LIST: 259, EOS: 260 } as const;
export const MISTRAL_MODEL: SuccessorModel = {
  added: [
    { content: "[TOOL_CALLS]", special: true },
    { content: '[{"name": "get_weather", "arguments": {"city": "Paris"}}]', special: false },
    { content: "<|eos|>", special: true },
  ],
  template:
    // Tool names only: the tiny model's context is 256 bytes.
    "{% if tools %}[AVAILABLE_TOOLS]{% for t in tools %}{{ t.function.name }}{% endfor %}[/AVAILABLE_TOOLS]{% endif %}" +
    "{% for m in messages %}{% for c in m.tool_calls or [] %}{% if c.id | length != 9 %}" +
    "{{ raise_exception('Tool call IDs should be alphanumeric strings with length 9!') }}{% endif %}" +
    "[TOOL_CALLS]{% endfor %}{{ m.content }}|{% endfor %}{% if tools %}T{% else %}N{% endif %}",
  eos: [MISTRAL_IDS.EOS],
  next: [
    [c("T"), MISTRAL_IDS.TOOL_CALLS, 10],
    [MISTRAL_IDS.TOOL_CALLS, c(" "), 10],
    [c(" "), MISTRAL_IDS.LIST, 10],
    [MISTRAL_IDS.LIST, MISTRAL_IDS.EOS, 10],
    [c("N"), c("H"), 10],
    [c("H"), c("i"), 10],
    [c("i"), MISTRAL_IDS.EOS, 10],
  ],
};

/** `m` with `rows` in front of its successor table (its own rows win where both set a weight). */
export function withRows(
  m: SuccessorModel,
  rows: readonly (readonly [number, number, number])[],
): SuccessorModel {
  return { ...m, next: [...rows, ...m.next] };
}
