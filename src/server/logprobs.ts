import type { TokenLogprob } from "../engine/api.js";
import type { Tokenizer } from "../tokenizer/types.js";

const utf8 = new TextEncoder();

/**
 * Text and raw bytes of single tokens for logprob listings, cached per id (the vocabulary is
 * fixed). The tokenizer's byte pieces are used when it has them, so a token keeps its leading
 * space and a partial UTF-8 character keeps its bytes (its text shows U+FFFD, as OpenAI's does).
 */
export class TokenTexts {
  private readonly texts = new Map<number, string>();
  private readonly raw = new Map<number, number[]>();
  private readonly lenient = new TextDecoder("utf-8");

  constructor(private readonly tokenizer: Tokenizer) {}

  text(id: number): string {
    let t = this.texts.get(id);
    if (t === undefined) {
      const pieces = this.tokenizer.pieces;
      t = pieces
        ? this.lenient.decode(pieces.bytes(id))
        : this.tokenizer.decode([id], { skipSpecialTokens: false });
      this.texts.set(id, t);
    }
    return t;
  }

  bytes(id: number): number[] {
    let b = this.raw.get(id);
    if (b === undefined) {
      const pieces = this.tokenizer.pieces;
      b = Array.from(pieces ? pieces.bytes(id) : utf8.encode(this.text(id)));
      this.raw.set(id, b);
    }
    return b;
  }
}

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
    return {
      token: texts.text(e.tokenId),
      logprob: e.logprob,
      bytes: texts.bytes(e.tokenId),
      top_logprobs: e.top
        .slice(0, topN)
        .map((t) => ({ token: texts.text(t.tokenId), logprob: t.logprob, bytes: texts.bytes(t.tokenId) })),
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
