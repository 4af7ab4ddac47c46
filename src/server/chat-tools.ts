import type { Tokenizer } from "../tokenizer/types.js";
import { badRequest } from "./errors.js";
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
  };
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
