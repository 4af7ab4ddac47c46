import { randomBytes } from "node:crypto";
import { singleTokenId } from "../tokenizer/prompt-ids.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { harmonyMarkers } from "./harmony.js";

/**
 * Tool calls in chat replies. A model's chat template shows it the tools and teaches it one way to
 * call them; the server reads that way back out of the reply. The formats read here, told apart by
 * the template's text (as llama.cpp's server tells them apart):
 * - `hermes`: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, any number, with text
 *   around them (Qwen2.5, Qwen3, QwQ, Hermes 2/3, SmolLM3);
 * - `llama3-json`: a reply that is one JSON object `{"name": ..., "parameters": {...}}` (or several
 *   joined by `;`), Llama 3.1-3.3's JSON tool calling;
 * - `harmony`: gpt-oss's messages addressed `to=functions.NAME`, their bodies the arguments (read
 *   by token in harmony.ts);
 * - `mistral`: calls after a `[TOOL_CALLS]` control token (read by token in mistral-calls.ts).
 */
export type ToolCallFormat = "hermes" | "llama3-json" | "harmony" | "mistral";

/** A call read from a reply: the function's name and its arguments as JSON text. */
export interface ParsedToolCall {
  readonly name: string;
  readonly arguments: string;
}

/** The format a model's template teaches, or null when it teaches none this server reads. */
export function toolCallFormat(tokenizer: Tokenizer): ToolCallFormat | null {
  if (!tokenizer.hasChatTemplate) return null;
  if (harmonyMarkers(tokenizer)) return "harmony";
  const t = tokenizer.chatTemplateText ?? "";
  if (t.includes("[TOOL_CALLS]") && singleTokenId(tokenizer, "[TOOL_CALLS]") != null) return "mistral";
  if (t.includes("<tool_call>")) return "hermes";
  if (t.includes("<|python_tag|>") || /"parameters": dictionary/.test(t)) return "llama3-json";
  return null;
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/**
 * What the server answers for a call: OpenAI's form, with an id the client sends back with the
 * result. Mistral's templates refuse ids that are not 9 letters or digits, so its calls get such ids.
 */
export function toolCallObject(call: ParsedToolCall, format: ToolCallFormat | null) {
  const id =
    format === "mistral"
      ? Array.from(randomBytes(9), (b) => ALNUM[b % ALNUM.length]).join("")
      : `call_${randomBytes(12).toString("hex")}`;
  return {
    id,
    type: "function" as const,
    function: { name: call.name, arguments: call.arguments },
  };
}

/**
 * A call's JSON as the model wrote it ({"name", "arguments"} or Llama's {"name", "parameters"}),
 * or null when it is not one (the text then stays content, as vLLM's parsers leave it).
 */
export function parseCallJson(text: string): ParsedToolCall | null {
  return callOf(parseJsonObject(text));
}

/** The JSON object `text` holds, or null (not JSON, or JSON that is not an object). */
export function parseJsonObject(text: string): Record<string, unknown> | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** A parsed call object ({"name", "arguments"} or {"name", "parameters"}) as a call, or null. */
export function callOf(o: Record<string, unknown> | null): ParsedToolCall | null {
  if (!o || typeof o.name !== "string" || o.name.length === 0) return null;
  const args = o.arguments !== undefined ? o.arguments : o.parameters;
  if (typeof args === "string") return { name: o.name, arguments: args };
  if (args !== undefined && (typeof args !== "object" || args === null || Array.isArray(args))) return null;
  return { name: o.name, arguments: JSON.stringify(args ?? {}) };
}

/**
 * The JSON objects of a text that is nothing but objects joined by whitespace or `;`, each as its
 * text; null when anything else is in it or an object is unfinished.
 */
export function splitJsonObjects(text: string): string[] | null {
  const out: string[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === "\\") escaped = true;
      else if (ch === '"') inString = false;
    } else if (depth > 0) {
      if (ch === '"') inString = true;
      else if (ch === "{" || ch === "[") depth++;
      else if (ch === "}" || ch === "]") {
        depth--;
        if (depth === 0) out.push(text.slice(start, i + 1));
      }
    } else if (ch === "{") {
      depth = 1;
      start = i;
    } else if (ch !== ";" && !/\s/.test(ch)) {
      return null;
    }
  }
  return depth === 0 && out.length > 0 ? out : null;
}
