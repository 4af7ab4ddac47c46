import { readTokenizerFile, TokenizerFileError } from "./files.js";
import { decodeWithPieces } from "./pieces-decode.js";
import { bpeMerge, type ScoredVocab } from "./score-bpe.js";
import type { ChatMessage, DecodeOptions, EncodeOptions, Tokenizer, TokenPieces } from "./types.js";
import { utf8Encoder } from "./utf8.js";

/** llama2.c's fixed special ids (its export writes the SentencePiece model's unk/bos/eos there). */
const UNK_ID = 0;
const BOS_ID = 1;
const EOS_ID = 2;
const SPECIAL_TEXT = ["<unk>", "<s>", "</s>"];
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

/** The contents of a tokenizer.bin: pieces as bytes (spaces are real spaces, not "▁") and their scores. */
interface Llama2cVocab {
  readonly pieces: Uint8Array[];
  readonly scores: Float32Array;
}

function parseTokenizerBin(file: string, data: Buffer, vocabSize: number | undefined): Llama2cVocab {
  const corrupt = (why: string) => new TokenizerFileError(file, `is not a llama2.c tokenizer.bin: ${why}`);
  if (data.length < 4) throw corrupt("shorter than its 4-byte header");
  const maxLen = data.readInt32LE(0);
  if (maxLen <= 0 || maxLen > 65536) throw corrupt(`implausible max_token_length ${maxLen}`);
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  let at = 4;
  while (vocabSize === undefined ? at < data.length : pieces.length < vocabSize) {
    const i = pieces.length;
    if (at + 8 > data.length) {
      throw corrupt(
        `ends inside token ${i}` + (vocabSize !== undefined ? ` (expected ${vocabSize} tokens)` : ""),
      );
    }
    const score = data.readFloatLE(at);
    const len = data.readInt32LE(at + 4);
    at += 8;
    if (len < 0 || len > maxLen || at + len > data.length)
      throw corrupt(`token ${i} has a bad length ${len}`);
    pieces.push(new Uint8Array(data.buffer, data.byteOffset + at, len));
    scores.push(score);
    at += len;
  }
  if (pieces.length <= EOS_ID) throw corrupt(`only ${pieces.length} tokens`);
  return { pieces, scores: Float32Array.from(scores) };
}

/**
 * A llama2.c tokenizer.bin (Llama 2's 32k SentencePiece vocabulary, or the small tok512/tok4096
 * ones of the tinyllamas) with llama2.c's encoding: a dummy-prefix space, best-score pair merges,
 * byte fallback to <0xNN> tokens, BOS=1, EOS=2.
 */
class Llama2cTokenizer implements Tokenizer, TokenPieces, ScoredVocab {
  readonly vocabSize: number;
  readonly bosTokenId = BOS_ID;
  readonly eosTokenIds: readonly number[] = [EOS_ID];
  readonly hasChatTemplate = false;
  readonly stripsLeadingSpace = true;
  readonly pieces: TokenPieces = this;
  /** Text → id for pieces that text may become (no control or byte tokens). */
  private readonly ids = new Map<string, number>();
  /** Token id of each byte value, for characters outside the vocabulary. */
  private readonly byteIds = new Int32Array(256).fill(UNK_ID);
  private readonly bytesOf: Uint8Array[];

  constructor(
    private readonly file: string,
    private readonly vocab: Llama2cVocab,
  ) {
    this.vocabSize = vocab.pieces.length;
    this.bytesOf = vocab.pieces.map((raw, id) => {
      if (id <= EOS_ID) return utf8Encoder.encode(SPECIAL_TEXT[id]!);
      const text = Buffer.from(raw).toString("utf8");
      const byte = BYTE_TOKEN.exec(text);
      if (byte) {
        const b = Number.parseInt(byte[1]!, 16);
        this.byteIds[b] = id;
        return Uint8Array.of(b);
      }
      if (!this.ids.has(text)) this.ids.set(text, id);
      return raw;
    });
  }

  lookup(piece: string): number | undefined {
    return this.ids.get(piece);
  }

  score(id: number): number {
    return this.vocab.scores[id]!;
  }

  bytes(id: number): Uint8Array {
    return this.bytesOf[id] ?? EMPTY;
  }

  isSpecial(id: number): boolean {
    return id === UNK_ID || id === BOS_ID || id === EOS_ID;
  }

  encode(text: string, options?: EncodeOptions): number[] {
    const out: number[] = [];
    if (options?.addSpecialTokens ?? true) out.push(BOS_ID);
    if (text === "") return out;
    // SentencePiece's dummy prefix: a word at the start looks like a word after a space.
    for (const piece of bpeMerge(" " + text, this)) {
      if (piece.id !== undefined) out.push(piece.id);
      else for (const b of utf8Encoder.encode(piece.text)) out.push(this.byteIds[b]!);
    }
    return out;
  }

  decode(ids: readonly number[], options?: DecodeOptions): string {
    return decodeWithPieces(this, ids, options?.skipSpecialTokens ?? true);
  }

  applyChatTemplate(_messages: readonly ChatMessage[]): string {
    throw new Error(
      `the llama2.c tokenizer ${this.file} has no chat template; send a plain completion prompt`,
    );
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Loads a llama2.c tokenizer.bin. The file does not store its vocabulary size; pass the model's
 * (opts.vocabSize) to read exactly that many tokens, or leave it out to read to the end of the file.
 */
export function loadLlama2cTokenizer(path: string, opts: { vocabSize?: number } = {}): Tokenizer {
  if (opts.vocabSize !== undefined && !(Number.isInteger(opts.vocabSize) && opts.vocabSize > EOS_ID)) {
    throw new Error(
      `loadLlama2cTokenizer(${path}): vocabSize must be an integer > ${EOS_ID}, got ${opts.vocabSize}`,
    );
  }
  return new Llama2cTokenizer(path, parseTokenizerBin(path, readTokenizerFile(path), opts.vocabSize));
}

/**
 * The raw contents of a tokenizer.bin, for format conversion (GGUF export): each piece's bytes as
 * stored (spaces are real spaces; ids 0-2 hold llama2.c's own text for unk/bos/eos) and its score.
 */
export function readLlama2cVocab(
  path: string,
  opts: { vocabSize?: number } = {},
): { readonly pieces: readonly Uint8Array[]; readonly scores: Float32Array } {
  return parseTokenizerBin(path, readTokenizerFile(path), opts.vocabSize);
}
