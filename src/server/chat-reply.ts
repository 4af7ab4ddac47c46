import type { FinishReason } from "../engine/api.js";
import type { ChatToolCall } from "../tokenizer/types.js";
import type { ToolUse } from "./chat-tools.js";
import type { ReplySplitter } from "./reply-parts.js";
import { HermesCallReader, JsonCallReader, type ToolCallReader } from "./tool-call-text.js";
import { type ParsedToolCall, parseJsonObject, type ToolCallFormat, toolCallObject } from "./tool-calls.js";

/** What a stretch of one chat reply adds: reasoning, answer text, and tool calls. */
export interface ReplyDelta {
  reasoning: string;
  content: string;
  calls: ParsedToolCall[];
}

/**
 * Reads one chat reply as it arrives: split into reasoning and answer by token where the model's
 * format marks them (reply-parts.ts), then tool calls taken out of the answer where the request
 * offered tools (harmony's come from the split itself, by token).
 */
export class ChoiceReader {
  private readonly tools: ToolCallReader | null;
  /** Calls passed on so far (parallel_tool_calls false stops at one). */
  callCount = 0;

  constructor(
    private readonly splitter: ReplySplitter | null,
    private readonly use: ToolUse | null,
  ) {
    const format = use?.format;
    this.tools =
      format === "hermes" ? new HermesCallReader() : format === "llama3-json" ? new JsonCallReader() : null;
  }

  /**
   * Feeds what the prompt already began the reply with (a forced call's opening), so the reply's
   * own tokens are read as its continuation. Adds nothing to the reply.
   */
  prime(ids: readonly number[], text: string): void {
    if (this.splitter) this.read(ids, "", false);
    else this.tools?.push(text);
  }

  /** The next tokens of the reply (`text`: their text as the engine gave it); `finished`: the last. */
  read(ids: readonly number[], text: string, finished: boolean): ReplyDelta {
    let reasoning = "";
    let content = text;
    const calls: ParsedToolCall[] = [];
    if (this.splitter) {
      const parts = this.splitter.push(ids);
      const rest = finished ? this.splitter.flush() : { reasoning: "", content: "", calls: [] };
      reasoning = parts.reasoning + rest.reasoning;
      content = parts.content + rest.content;
      calls.push(...(parts.calls ?? []), ...(rest.calls ?? []));
    }
    if (this.tools) {
      const t = this.tools.push(content);
      const rest = finished ? this.tools.flush() : { content: "", calls: [] };
      content = t.content + rest.content;
      calls.push(...t.calls, ...rest.calls);
    }
    const room = (this.use?.maxCalls ?? Number.POSITIVE_INFINITY) - this.callCount;
    const kept = calls.slice(0, Math.max(0, room));
    this.callCount += kept.length;
    return { reasoning, content, calls: kept };
  }
}

/** OpenAI's finish reason: a reply that stopped after calling tools says so. */
export function chatFinishReason(reason: FinishReason, calls: number): FinishReason | "tool_calls" {
  return calls > 0 && reason === "stop" ? "tool_calls" : reason;
}

/** A whole reply as the assistant message: the answer (null beside calls when empty), reasoning, calls. */
export function replyMessage(d: ReplyDelta, format: ToolCallFormat | null) {
  return {
    role: "assistant",
    content: d.calls.length > 0 && !d.content ? null : d.content,
    ...(d.reasoning ? { reasoning_content: d.reasoning } : {}),
    ...(d.calls.length > 0 ? { tool_calls: d.calls.map((c) => toolCallObject(c, format)) } : {}),
  };
}

/** A stretch of a streamed reply as a delta; `first`: the index the first of its calls gets. */
export function replyDeltaChunk(d: ReplyDelta, first: number, format: ToolCallFormat | null) {
  return {
    ...(d.reasoning ? { reasoning_content: d.reasoning } : {}),
    ...(d.content ? { content: d.content } : {}),
    ...(d.calls.length > 0
      ? { tool_calls: d.calls.map((c, i) => ({ index: first + i, ...toolCallObject(c, format) })) }
      : {}),
  };
}

/**
 * An assistant turn's calls as templates read them: arguments that are a JSON object as the
 * object (templates write them with `tojson`), any other text as it is.
 */
export function templateToolCalls(
  calls: readonly { id: string; function: { name: string; arguments: string } }[],
): ChatToolCall[] {
  return calls.map((c) => {
    const args = parseJsonObject(c.function.arguments) ?? c.function.arguments;
    return { id: c.id, type: "function", function: { name: c.function.name, arguments: args } };
  });
}
