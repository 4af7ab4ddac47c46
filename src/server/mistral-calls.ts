import { IncrementalDetokenizer } from "../tokenizer/detokenizer.js";
import { singleTokenId } from "../tokenizer/prompt-ids.js";
import type { Tokenizer } from "../tokenizer/types.js";
import type { ReplyParts, ReplySplitter } from "./reply-parts.js";
import { callOf, type ParsedToolCall, parseJsonObject } from "./tool-calls.js";

/**
 * Mistral's tool calls follow a `[TOOL_CALLS]` control token, which decoded text drops, so they
 * are read by token: before it the reply is content; after it, either a JSON list of
 * {"name", "arguments"} (v3 tokenizers: Mistral 7B v0.3, Mixtral 8x22B, Nemo) or, where the
 * vocabulary also has `[ARGS]`, `NAME[ARGS]{...}` once a call (later tokenizers: Small 3.2, Devstral,
 * Magistral). What does not read as calls is shown as content.
 */
export interface MistralMarkers {
  readonly toolCalls: number;
  readonly args: number | null;
}

const cache = new WeakMap<Tokenizer, MistralMarkers | null>();

/** The vocabulary's `[TOOL_CALLS]` (and `[ARGS]`) tokens, or null without the first. */
export function mistralMarkers(tokenizer: Tokenizer): MistralMarkers | null {
  const known = cache.get(tokenizer);
  if (known !== undefined) return known;
  const toolCalls = singleTokenId(tokenizer, "[TOOL_CALLS]");
  const markers = toolCalls != null ? { toolCalls, args: singleTokenId(tokenizer, "[ARGS]") } : null;
  cache.set(tokenizer, markers);
  return markers;
}

/** One reply's content and calls apart, as its tokens arrive. */
export class MistralCallStream implements ReplySplitter {
  private text: IncrementalDetokenizer;
  /** null: still content; else the calls' text so far (a name, then its arguments after [ARGS]). */
  private call: { name: string; args: string | null } | null = null;
  /** The raw text after each [TOOL_CALLS], shown as content if it does not read as calls. */
  private raw = "";
  private readonly calls: ParsedToolCall[] = [];
  private failed = false;

  constructor(
    tokenizer: Tokenizer,
    private readonly markers: MistralMarkers,
  ) {
    this.text = new IncrementalDetokenizer(tokenizer);
  }

  push(ids: readonly number[]): ReplyParts {
    const out: ReplyParts = { reasoning: "", content: "" };
    for (const id of ids) {
      if (id === this.markers.toolCalls) {
        this.take(out, this.text.flush());
        this.endCall();
        this.call = { name: "", args: null };
      } else if (id === this.markers.args && this.call && this.call.args === null) {
        this.take(out, this.text.flush());
        this.call.args = "";
      } else {
        this.take(out, this.text.push(id));
      }
    }
    return out;
  }

  flush(): ReplyParts {
    const out: ReplyParts = { reasoning: "", content: "" };
    this.take(out, this.text.flush());
    this.endCall();
    if (this.failed) out.content += this.raw;
    else if (this.calls.length > 0) out.calls = this.calls;
    return out;
  }

  private take(out: ReplyParts, text: string): void {
    if (!this.call) {
      out.content += text;
      return;
    }
    this.raw += text;
    if (this.call.args === null) this.call.name += text;
    else this.call.args += text;
  }

  /** Reads the open call's text: a name and arguments, or (without [ARGS]) a JSON list of calls. */
  private endCall(): void {
    const c = this.call;
    this.call = null;
    if (!c) return;
    const read = c.args !== null ? namedCall(c.name.trim(), c.args.trim() || "{}") : jsonList(c.name.trim());
    if (read) this.calls.push(...read);
    else this.failed = true;
  }
}

/** `NAME[ARGS]{...}`'s parts as a call, or null when the name or the arguments are not one. */
function namedCall(name: string, args: string): ParsedToolCall[] | null {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) return null;
  const v = parseJsonObject(args);
  return v ? [{ name, arguments: JSON.stringify(v) }] : null;
}

/** `[{call}, ...]` (or one bare call) as calls, or null. */
function jsonList(text: string): ParsedToolCall[] | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  const calls = (Array.isArray(v) ? v : [v]).map((o) =>
    callOf(typeof o === "object" && o !== null && !Array.isArray(o) ? (o as Record<string, unknown>) : null),
  );
  return calls.length > 0 && calls.every((c) => c !== null) ? (calls as ParsedToolCall[]) : null;
}
