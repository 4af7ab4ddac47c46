import { IncrementalDetokenizer } from "../tokenizer/detokenizer.js";
import { singleTokenId } from "../tokenizer/prompt-ids.js";
import type { Tokenizer } from "../tokenizer/types.js";
import type { ReplyParts, ReplySplitter } from "./reply-parts.js";
import type { ParsedToolCall } from "./tool-calls.js";

/**
 * gpt-oss answers in OpenAI's harmony format: each message is `<|start|>` header `<|message|>` body,
 * ended by `<|end|>`, `<|return|>` (the reply is done) or `<|call|>` (a tool call), the header naming
 * the role and `<|channel|>` analysis (reasoning), commentary or final (the answer). The reply
 * starts inside the first header, the chat template having ended the prompt with
 * `<|start|>assistant`. These are special tokens, which decoded text drops, so the reply is split by
 * token id: analysis bodies become `reasoning_content` (as llama.cpp's and vLLM's servers name it),
 * every other body `content`, and the markers and headers neither. With tools offered, a message
 * whose header addresses `to=functions.NAME` is a tool call, its body the arguments (harmony's
 * commentary channel, ended by `<|call|>`).
 */

export interface HarmonyMarkers {
  readonly start: number;
  readonly channel: number;
  readonly message: number;
  /** `<|end|>`, `<|return|>`, `<|call|>`: a body ends at any of them. */
  readonly ends: ReadonlySet<number>;
}

const cache = new WeakMap<Tokenizer, HarmonyMarkers | null>();

/** The vocabulary's harmony markers, or null when it lacks them (a model that does not speak harmony). */
export function harmonyMarkers(tokenizer: Tokenizer): HarmonyMarkers | null {
  const known = cache.get(tokenizer);
  if (known !== undefined) return known;
  const id = (text: string) => singleTokenId(tokenizer, text);
  const [start, channel, message, end, ret, call] = [
    "<|start|>",
    "<|channel|>",
    "<|message|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
  ].map(id);
  const markers =
    start != null && channel != null && message != null && end != null && ret != null && call != null
      ? { start, channel, message, ends: new Set([end, ret, call]) }
      : null;
  cache.set(tokenizer, markers);
  return markers;
}

/** One reply's token stream split into reasoning and content as it arrives. */
export class HarmonyStream implements ReplySplitter {
  private inHeader = true;
  private header: number[] = [];
  private body: IncrementalDetokenizer | null = null;
  private toReasoning = false;
  /** The function the open body calls, and its text so far. */
  private call: { name: string; text: string } | null = null;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly markers: HarmonyMarkers,
    private readonly toolCalls = false,
  ) {}

  /** The text the new tokens add to each part. */
  push(ids: readonly number[]): ReplyParts {
    const out: ReplyParts = { reasoning: "", content: "" };
    const m = this.markers;
    for (const id of ids) {
      if (id === m.start) {
        this.close(out);
        this.inHeader = true;
        this.header = [];
      } else if (id === m.message && this.inHeader) {
        this.open();
      } else if (m.ends.has(id)) {
        this.close(out);
        this.inHeader = false;
      } else if (this.inHeader) {
        this.header.push(id);
      } else {
        // Body text, or (malformed) text outside any message: shown as content.
        if (!this.body) this.open();
        this.emit(out, this.body!.push(id));
      }
    }
    return out;
  }

  /** What is left at the end of the reply (an unfinished character, a body without its end). */
  flush(): ReplyParts {
    const out: ReplyParts = { reasoning: "", content: "" };
    this.close(out, false);
    return out;
  }

  /** Starts a body, routed by its header's channel. */
  private open(): void {
    const header = this.tokenizer.decode(this.header, { skipSpecialTokens: false });
    const channel = /<\|channel\|>\s*(\w+)/.exec(header)?.[1];
    this.toReasoning = channel === "analysis";
    const to = this.toolCalls ? /\bto=functions\.([^\s<]+)/.exec(header)?.[1] : undefined;
    this.call = to ? { name: to, text: "" } : null;
    this.inHeader = false;
    this.header = [];
    this.body = new IncrementalDetokenizer(this.tokenizer);
  }

  /** Ends the open body; a call cut off before its end marker (`ended` false) is shown as content. */
  private close(out: ReplyParts, ended = true): void {
    if (this.body) this.emit(out, this.body.flush());
    this.body = null;
    if (this.call) {
      const call: ParsedToolCall = { name: this.call.name, arguments: this.call.text.trim() || "{}" };
      if (ended) (out.calls ??= []).push(call);
      else out.content += this.call.text;
      this.call = null;
    }
  }

  private emit(out: ReplyParts, text: string): void {
    if (this.call) this.call.text += text;
    else if (this.toReasoning) out.reasoning += text;
    else out.content += text;
  }
}
