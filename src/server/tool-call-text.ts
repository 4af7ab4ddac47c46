import { type ParsedToolCall, parseCallJson, splitJsonObjects } from "./tool-calls.js";

/** A reply's answer text with its tool calls taken out. */
export interface ContentAndCalls {
  content: string;
  calls: ParsedToolCall[];
}

/** Reads tool calls out of a reply's answer text as it arrives (the whole reply: push all, then flush). */
export interface ToolCallReader {
  push(text: string): ContentAndCalls;
  flush(): ContentAndCalls;
}

const OPEN = "<tool_call>";
const CLOSE = "</tool_call>";

/** The length of the longest end of `text` that begins `tag` (text that may be the tag's start). */
function partialTagAtEnd(text: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, text.length); n > 0; n--)
    if (tag.startsWith(text.slice(-n))) return n;
  return 0;
}

/**
 * Hermes-style calls (Qwen's templates): each `<tool_call>` … `</tool_call>` holding a JSON call;
 * the text around them is content, shown as it comes except a possible tag's first characters,
 * which wait for the next text. A block that does not hold a call (or is cut off) stays content,
 * tags and all.
 */
export class HermesCallReader implements ToolCallReader {
  private pending = "";
  private inCall = false;
  private afterCall = false;

  push(text: string): ContentAndCalls {
    const out: ContentAndCalls = { content: "", calls: [] };
    this.pending += text;
    for (;;) {
      if (this.inCall) {
        const end = this.pending.indexOf(CLOSE);
        if (end < 0) break;
        this.endCall(out, this.pending.slice(0, end), CLOSE);
        this.pending = this.pending.slice(end + CLOSE.length);
        continue;
      }
      const at = this.pending.indexOf(OPEN);
      const upTo = at >= 0 ? at : this.pending.length - partialTagAtEnd(this.pending, OPEN);
      this.addContent(out, this.pending.slice(0, upTo));
      if (at < 0) {
        this.pending = this.pending.slice(upTo);
        break;
      }
      this.pending = this.pending.slice(at + OPEN.length);
      this.inCall = true;
    }
    return out;
  }

  flush(): ContentAndCalls {
    const out: ContentAndCalls = { content: "", calls: [] };
    if (this.inCall) this.endCall(out, this.pending, "");
    else this.addContent(out, this.pending);
    this.pending = "";
    return out;
  }

  private endCall(out: ContentAndCalls, body: string, close: string): void {
    this.inCall = false;
    const call = parseCallJson(body.trim());
    if (call) {
      out.calls.push(call);
      this.afterCall = true;
    } else {
      this.addContent(out, OPEN + body + close);
    }
  }

  /** Text between and after calls is their separators: whitespace there is not content. */
  private addContent(out: ContentAndCalls, text: string): void {
    if (this.afterCall) {
      const t = text.replace(/^\s+/, "");
      if (!t) return;
      this.afterCall = false;
      out.content += t;
    } else {
      out.content += text;
    }
  }
}

/**
 * Llama 3's JSON calls: a reply whose first non-space character is `{` is held to its end and read
 * as one or more calls joined by `;`; any other reply (or one that does not parse as calls) is
 * content as it comes.
 */
export class JsonCallReader implements ToolCallReader {
  /** undefined: not yet known (only whitespace so far); true: holding a possible call. */
  private holding: boolean | undefined;
  private pending = "";

  push(text: string): ContentAndCalls {
    this.pending += text;
    if (this.holding === undefined) {
      const first = this.pending.trimStart();
      if (first) this.holding = first.startsWith("{");
    }
    if (this.holding !== false) return { content: "", calls: [] };
    const content = this.pending;
    this.pending = "";
    return { content, calls: [] };
  }

  flush(): ContentAndCalls {
    const text = this.pending;
    this.pending = "";
    const objects = this.holding ? splitJsonObjects(text) : null;
    const calls = objects?.map(parseCallJson);
    if (calls?.every((c) => c !== null)) return { content: "", calls: calls as ParsedToolCall[] };
    return { content: text, calls: [] };
  }
}
