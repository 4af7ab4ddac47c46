import { IncrementalDetokenizer } from "../tokenizer/detokenizer.js";
import { singleTokenId } from "../tokenizer/prompt-ids.js";
import type { Tokenizer } from "../tokenizer/types.js";
import type { ReplyParts, ReplySplitter } from "./reply-parts.js";

/**
 * Reasoning models that think inside `<think>` … `</think>` (Qwen3, DeepSeek-R1's distills, SmolLM3,
 * GLM-Z1; Seed-OSS's `<seed:think>`): what the reply says inside the block is `reasoning_content`, the rest `content`, as
 * llama.cpp's server returns them by default. Split by token id where the vocabulary has both tags
 * as single tokens; a prompt whose template already opened the block (R1's "<think>\n") starts the
 * reply inside it, one that closed it (Qwen3 with enable_thinking false) outside. Each part loses
 * the whitespace it starts with (the newlines around the tags).
 */

export interface ThinkMarkers {
  readonly open: number;
  readonly close: number;
}

const cache = new WeakMap<Tokenizer, ThinkMarkers | null>();

/** The tag pairs models think between: most use <think>, Seed-OSS <seed:think>. */
const TAGS = [
  ["<think>", "</think>"],
  ["<seed:think>", "</seed:think>"],
] as const;

/** The vocabulary's think tags (the first pair it has both of as single tokens), or null. */
export function thinkMarkers(tokenizer: Tokenizer): ThinkMarkers | null {
  const known = cache.get(tokenizer);
  if (known !== undefined) return known;
  let markers: ThinkMarkers | null = null;
  for (const [o, c] of TAGS) {
    const open = singleTokenId(tokenizer, o);
    const close = singleTokenId(tokenizer, c);
    if (open != null && close != null) {
      markers = { open, close };
      break;
    }
  }
  cache.set(tokenizer, markers);
  return markers;
}

/** One reply's tokens split at its think tags as they arrive. */
export class ThinkStream implements ReplySplitter {
  private inside: boolean;
  private part: IncrementalDetokenizer;
  /** Whether each part has shown text yet (its leading whitespace is dropped until then). */
  private started = { reasoning: false, content: false };

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly markers: ThinkMarkers,
    prompt: readonly number[],
  ) {
    this.inside = prompt.lastIndexOf(markers.open) > prompt.lastIndexOf(markers.close);
    this.part = new IncrementalDetokenizer(tokenizer);
  }

  push(ids: readonly number[]): ReplyParts {
    const out: ReplyParts = { reasoning: "", content: "" };
    for (const id of ids) {
      if (id === this.markers.open || id === this.markers.close) {
        this.emit(out, this.part.flush());
        this.inside = id === this.markers.open;
        this.part = new IncrementalDetokenizer(this.tokenizer);
      } else {
        this.emit(out, this.part.push(id));
      }
    }
    return out;
  }

  flush(): ReplyParts {
    const out: ReplyParts = { reasoning: "", content: "" };
    this.emit(out, this.part.flush());
    return out;
  }

  private emit(out: ReplyParts, text: string): void {
    const key = this.inside ? "reasoning" : "content";
    let t = text;
    if (!this.started[key]) {
      t = t.replace(/^\s+/, "");
      if (t) this.started[key] = true;
    }
    out[key] += t;
  }
}
