import type { ToolCallConstraint } from "../engine/api.js";
import { compileSchema, SchemaError } from "../engine/json-schema.js";
import { singleTokenId } from "../tokenizer/prompt-ids.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { badRequest } from "./errors.js";
import { harmonyMarkers } from "./harmony.js";
import { mistralMarkers } from "./mistral-calls.js";
import type { ChatTool, ChatToolChoice } from "./schemas.js";
import { type ToolCallFormat, toolCallFormat } from "./tool-calls.js";

/** How one chat request uses tools: what the template is given and how the reply is read. */
export interface ToolUse {
  readonly format: ToolCallFormat;
  /** The template's `tools` variable (the request's tools, as transformers passes them). */
  readonly tools: readonly ChatTool[];
  /**
   * Text the prompt begins the reply with, so that it calls a tool (tool_choice "required") or
   * the named one: the format's opening of a call, which the model then completes. Empty: auto.
   */
  readonly prefill: string;
  /** parallel_tool_calls false: the first call only. */
  readonly maxCalls: number;
  /** Where a tool is strict: how the engine draws the calls (engine/tool-call-draw.ts); else null. */
  readonly constraint: ToolCallConstraint | null;
}

const FORMATS = "Hermes <tool_call> tags as Qwen's templates teach, Llama 3's JSON calls, gpt-oss's harmony";

/**
 * The request's tool use, or null when it offers no tools or tool_choice is "none" (then the
 * template is not shown them and the reply is all content). A model whose template teaches no
 * call format this server reads is refused, as is a named choice that is not among the tools.
 */
export function toolUse(
  tokenizer: Tokenizer,
  body: {
    tools?: readonly ChatTool[] | null;
    tool_choice?: ChatToolChoice | null;
    parallel_tool_calls?: boolean | null;
  },
): ToolUse | null {
  const tools = body.tools ?? null;
  const choice = body.tool_choice ?? "auto";
  if (!tools) {
    if (body.tool_choice != null && choice !== "none")
      throw badRequest("tool_choice needs tools to choose from", "tool_choice");
    return null;
  }
  if (choice === "none") return null;
  const format = toolCallFormat(tokenizer);
  if (!format) {
    throw badRequest(
      "this model's chat template teaches no tool-call format this server reads " +
        `(it reads: ${FORMATS}); send the request without tools`,
      "tools",
    );
  }
  let prefill = "";
  if (typeof choice === "object") {
    const name = choice.function.name;
    if (!tools.some((t) => t.function.name === name))
      throw badRequest(`tool_choice names "${name}", which is not among the tools`, "tool_choice");
    prefill = namedCallOpening(format, name, mistralMarkers(tokenizer)?.args != null);
  } else if (choice === "required") {
    prefill = CALL_OPENING[format];
  }
  return {
    format,
    tools,
    prefill,
    maxCalls: body.parallel_tool_calls === false ? 1 : Number.POSITIVE_INFINITY,
    constraint: tools.some((t) => t.function.strict === true)
      ? strictCalls(tokenizer, format, tools, prefill)
      : null,
  };
}

/**
 * The constraint for strict tools: every call's name is a tool's and its arguments a value of that
 * tool's schema (a tool not marked strict takes any object). Drawn for the formats whose calls are
 * whole JSON objects (Hermes tags, the tags single tokens; Llama 3's JSON; Mistral's JSON list) and
 * for those whose header names the function (harmony's messages, Mistral's NAME[ARGS]).
 */
function strictCalls(
  tokenizer: Tokenizer,
  format: ToolCallFormat,
  tools: readonly ChatTool[],
  prefill: string,
): ToolCallConstraint {
  const refuse = (why: string) =>
    badRequest(
      `strict tools: ${why}; strict calls are drawn for Hermes <tool_call> tags, Llama 3's JSON calls, Mistral's [TOOL_CALLS] and harmony's messages to functions`,
      "tools",
    );
  if (!tokenizer.pieces) throw refuse("this model's tokenizer does not give its tokens as bytes");
  const specs = tools.map((t) => ({
    name: t.function.name,
    parameters: t.function.strict === true ? (t.function.parameters ?? {}) : null,
  }));
  let c: ToolCallConstraint;
  if (format === "hermes") {
    const open = singleTokenId(tokenizer, "<tool_call>");
    const close = singleTokenId(tokenizer, "</tool_call>");
    if (open === null || close === null) throw refuse("this model's <tool_call> tags are not single tokens");
    const opened = prefill ? prefill.slice("<tool_call>".length) : null;
    c = { tools: specs, argsKey: "arguments", list: false, named: null, open, close, opened };
  } else if (format === "llama3-json") {
    c = {
      tools: specs,
      argsKey: "parameters",
      list: false,
      named: null,
      open: null,
      close: null,
      opened: prefill || null,
    };
  } else if (format === "mistral" && mistralMarkers(tokenizer)?.args == null) {
    // [TOOL_CALLS] then one JSON list of every call, which ends the reply.
    const open = singleTokenId(tokenizer, "[TOOL_CALLS]")!;
    const opened = prefill ? prefill.slice("[TOOL_CALLS]".length) : null;
    c = { tools: specs, argsKey: "arguments", list: true, named: null, open, close: null, opened };
  } else if (format === "harmony") {
    c = harmonyCalls(tokenizer, specs, prefill);
  } else c = mistralArgsCalls(tokenizer, specs, prefill);
  for (let i = 0; i < specs.length; i++) {
    try {
      if (specs[i]!.parameters !== null) compileSchema(specs[i]!.parameters);
    } catch (e) {
      if (e instanceof SchemaError)
        throw badRequest(`tools[${i}].function.parameters: ${e.message}`, `tools[${i}].function.parameters`);
      throw e;
    }
  }
  return c;
}

/** Each format's opening of a call, up to where the function's name goes. */
const CALL_OPENING: Readonly<Record<ToolCallFormat, string>> = {
  hermes: "<tool_call>\n",
  "llama3-json": '{"name": "',
  harmony: "<|channel|>commentary to=functions.",
  mistral: "[TOOL_CALLS]",
};

/** A call of `name` opened up to its arguments (`mistralArgs`: the vocabulary has Mistral's `[ARGS]`). */
function namedCallOpening(format: ToolCallFormat, name: string, mistralArgs: boolean): string {
  switch (format) {
    case "hermes":
      return `<tool_call>\n{"name": "${name}", "arguments": `;
    case "llama3-json":
      return `{"name": "${name}", "parameters": `;
    case "harmony":
      return `<|channel|>commentary to=functions.${name} <|constrain|>json<|message|>`;
    case "mistral":
      return mistralArgs ? `[TOOL_CALLS]${name}[ARGS]` : `[TOOL_CALLS] [{"name": "${name}", "arguments": `;
  }
}

/**
 * Harmony's strict calls: a header naming `to=functions.NAME` names a tool, and that message's
 * body is its arguments, closed by <|call|>. The prompt may have opened the call (named: its body
 * is next) or its recipient (required: the name is next).
 */
function harmonyCalls(
  tokenizer: Tokenizer,
  tools: ToolCallConstraint["tools"],
  prefill: string,
): ToolCallConstraint {
  const m = harmonyMarkers(tokenizer)!;
  const call = singleTokenId(tokenizer, "<|call|>")!;
  const named = /to=functions\.(\S+) <\|constrain\|>json<\|message\|>$/.exec(prefill);
  const header = prefill.startsWith("<|channel|>") ? prefill.slice("<|channel|>".length) : "";
  return {
    tools,
    argsKey: "arguments",
    list: false,
    named: {
      start: m.start,
      message: m.message,
      recipient: "to=functions.",
      header,
      calling: named ? named[1]! : null,
    },
    open: null,
    close: call,
    opened: null,
  };
}

/**
 * Mistral's later form, `[TOOL_CALLS]NAME[ARGS]{...}` a call: the text between the two tokens is
 * drawn among the tools' names, the JSON after [ARGS] under that tool's schema. The prompt may
 * have opened the call (named: the arguments are next) or [TOOL_CALLS] (required: the name).
 */
function mistralArgsCalls(
  tokenizer: Tokenizer,
  tools: ToolCallConstraint["tools"],
  prefill: string,
): ToolCallConstraint {
  const m = mistralMarkers(tokenizer)!;
  const calling = /^\[TOOL_CALLS\](\S+)\[ARGS\]$/.exec(prefill);
  return {
    tools,
    argsKey: "arguments",
    list: false,
    named: {
      start: m.toolCalls,
      message: m.args!,
      recipient: "",
      header: prefill === "[TOOL_CALLS]" ? "" : null,
      calling: calling ? calling[1]! : null,
    },
    open: null,
    close: null,
    opened: null,
  };
}
