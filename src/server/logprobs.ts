import type { TokenLogprob } from "../engine/api.js";
import type { Tokenizer } from "../tokenizer/types.js";

/** Decodes single tokens for logprob listings, caching each id's text (the vocabulary is fixed). */
export class TokenTexts {
  private readonly cache = new Map<number, string>();

  constructor(private readonly tokenizer: Tokenizer) {}

  text(id: number): string {
    let t = this.cache.get(id);
    if (t === undefined) {
      t = this.tokenizer.decode([id], { skipSpecialTokens: false });
      this.cache.set(id, t);
    }
    return t;
  }
}

const utf8 = new TextEncoder();

export interface ChatLogprobEntry {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

/** Chat completions' `logprobs.content` entries. */
export function chatLogprobs(
  entries: readonly TokenLogprob[],
  texts: TokenTexts,
  topN: number,
): ChatLogprobEntry[] {
  return entries.map((e) => {
    const token = texts.text(e.tokenId);
    return {
      token,
      logprob: e.logprob,
      bytes: Array.from(utf8.encode(token)),
      top_logprobs: e.top.slice(0, topN).map((t) => {
        const tt = texts.text(t.tokenId);
        return { token: tt, logprob: t.logprob, bytes: Array.from(utf8.encode(tt)) };
      }),
    };
  });
}

/** Legacy completions' `logprobs` object (parallel arrays). */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

export function emptyCompletionLogprobs(): CompletionLogprobs {
  return { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
}

/** Appends entries to `out`; `offset` is the completion text length before them. Returns the new offset. */
export function appendCompletionLogprobs(
  out: CompletionLogprobs,
  entries: readonly TokenLogprob[],
  texts: TokenTexts,
  topN: number,
  offset: number,
): number {
  for (const e of entries) {
    const token = texts.text(e.tokenId);
    out.tokens.push(token);
    out.token_logprobs.push(e.logprob);
    const top: Record<string, number> = {};
    for (const t of e.top.slice(0, topN)) top[texts.text(t.tokenId)] = t.logprob;
    out.top_logprobs.push(top);
    out.text_offset.push(offset);
    offset += token.length;
  }
  return offset;
}
