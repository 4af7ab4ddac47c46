import type { Tokenizer, TokenPieces } from "./types.js";
import { completePrefixLength, utf8Decoder } from "./utf8.js";

export interface DetokenizerOptions {
  /** Drop special tokens from the text, as decode does by default. Default true. */
  readonly skipSpecialTokens?: boolean;
}

const fatalDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Per vocabulary: each token's text when its bytes are whole UTF-8 characters on their own (null
 * when they are not). Shared by every sequence, filled on first use of a token.
 */
const wholeTextCache = new WeakMap<TokenPieces, (string | null | undefined)[]>();

/**
 * Turns a stream of token ids into a stream of final text: never half a UTF-8 character, and the
 * concatenation of everything pushed (then flushed) equals decode(context + ids) minus decode(context).
 * With TokenPieces the common case (no pending bytes, token made of whole characters) returns a
 * cached string and allocates nothing; tokenizers without pieces fall back to re-decoding a short
 * window of recent tokens.
 */
export class IncrementalDetokenizer {
  private readonly skipSpecial: boolean;
  private readonly pieces: TokenPieces | undefined;
  private readonly whole: (string | null | undefined)[];
  /** Bytes of an unfinished character, followed by scratch space. */
  private pending = new Uint8Array(64);
  private pendingLen = 0;
  /** SentencePiece: the first emitted text still has to lose its dummy-prefix space. */
  private atStart: boolean;
  // Fallback (no pieces): ids seen, and the window [prefixOffset, readOffset) already emitted.
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  /**
   * @param context ids that precede the streamed ones (the prompt): they set the leading-space and
   *   partial-character state but are not emitted.
   */
  constructor(
    private readonly tokenizer: Tokenizer,
    context: readonly number[] = [],
    options: DetokenizerOptions = {},
  ) {
    this.skipSpecial = options.skipSpecialTokens ?? true;
    this.pieces = tokenizer.pieces;
    let whole = this.pieces ? wholeTextCache.get(this.pieces) : undefined;
    if (this.pieces && !whole) {
      // Filled up front: a sparse array indexed by large ids would use slow dictionary elements.
      whole = new Array<string | null | undefined>(tokenizer.vocabSize).fill(undefined);
      wholeTextCache.set(this.pieces, whole);
    }
    this.whole = whole ?? [];
    this.atStart = this.pieces?.stripsLeadingSpace === true;
    if (this.pieces) {
      for (const id of context) this.push(id);
    } else {
      this.ids.push(...context);
      // A few context tokens give the window the right leading-space and merge behaviour.
      this.readOffset = context.length;
      this.prefixOffset = Math.max(0, context.length - 5);
    }
  }

  /** Feeds one token id; returns the text that became final (often ""). */
  push(id: number): string {
    const pieces = this.pieces;
    if (!pieces) return this.pushByRedecoding(id);
    if (this.skipSpecial && pieces.isSpecial(id)) return "";
    if (this.pendingLen === 0) {
      const text = this.wholeText(pieces, id);
      if (text !== null) return this.emit(text);
    }
    const bytes = pieces.bytes(id);
    const total = this.pendingLen + bytes.length;
    if (total > this.pending.length) {
      const grown = new Uint8Array(Math.max(total, this.pending.length * 2));
      grown.set(this.pending.subarray(0, this.pendingLen));
      this.pending = grown;
    }
    this.pending.set(bytes, this.pendingLen);
    const cut = completePrefixLength(this.pending, total);
    const text = cut > 0 ? utf8Decoder.decode(this.pending.subarray(0, cut)) : "";
    this.pending.copyWithin(0, cut, total);
    this.pendingLen = total - cut;
    return this.emit(text);
  }

  /** End of stream: returns what is still held (an unfinished character decodes to U+FFFD). */
  flush(): string {
    if (!this.pieces) {
      const prefix = this.decodeRange(this.prefixOffset, this.readOffset);
      const all = this.decodeRange(this.prefixOffset, this.ids.length);
      this.prefixOffset = this.readOffset = this.ids.length;
      return all.slice(prefix.length);
    }
    if (this.pendingLen === 0) return "";
    const text = utf8Decoder.decode(this.pending.subarray(0, this.pendingLen));
    this.pendingLen = 0;
    return this.emit(text);
  }

  private emit(text: string): string {
    if (text === "" || !this.atStart) return text;
    this.atStart = false;
    return text.charCodeAt(0) === 0x20 ? text.slice(1) : text;
  }

  private wholeText(pieces: TokenPieces, id: number): string | null {
    const hit = this.whole[id];
    if (hit !== undefined) return hit;
    let text: string | null;
    try {
      text = fatalDecoder.decode(pieces.bytes(id));
    } catch {
      text = null; // part of a character, or invalid: goes through the byte path
    }
    if (Number.isInteger(id) && id >= 0 && id < this.tokenizer.vocabSize) this.whole[id] = text;
    return text;
  }

  /** Without pieces: decode a short window twice and emit the difference once it is not mid-character. */
  private pushByRedecoding(id: number): string {
    this.ids.push(id);
    const prefix = this.decodeRange(this.prefixOffset, this.readOffset);
    const all = this.decodeRange(this.prefixOffset, this.ids.length);
    if (all.length <= prefix.length || all.endsWith("\uFFFD")) return "";
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return all.slice(prefix.length);
  }

  private decodeRange(from: number, to: number): string {
    if (from >= to) return "";
    return this.tokenizer.decode(this.ids.slice(from, to), { skipSpecialTokens: this.skipSpecial });
  }
}
