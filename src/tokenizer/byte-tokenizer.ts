import { ChatTemplate } from "./chat-template.js";
import { decodeWithPieces } from "./pieces-decode.js";
import type {
  ChatMessage,
  ChatTemplateOptions,
  DecodeOptions,
  EncodeOptions,
  Tokenizer,
  TokenPieces,
} from "./types.js";
import { utf8Encoder } from "./utf8.js";

/** Ids 0..255 are the bytes themselves; then the two specials. */
export const BYTE_BOS_ID = 256;
export const BYTE_EOS_ID = 257;
/** The random-weight demo model's vocabulary: 256 bytes + BOS + EOS. */
export const BYTE_VOCAB_SIZE = 258;

const SPECIAL_TEXT = new Map<number, string>([
  [BYTE_BOS_ID, "<|bos|>"],
  [BYTE_EOS_ID, "<|eos|>"],
]);

/** The random-weight demo model's chat format: each turn on its own lines, then an open assistant turn. */
const DEMO_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

const BYTES: Uint8Array[] = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
const SPECIAL_BYTES = new Map([...SPECIAL_TEXT].map(([id, t]) => [id, utf8Encoder.encode(t)]));
const EMPTY = new Uint8Array(0);

/**
 * The random-weight demo model's tokenizer (`--model random`): one token per UTF-8 byte (ids 0..255),
 * BOS=256, EOS=257, vocabSize 258. Any text round-trips exactly; the chat markers are plain bytes,
 * not special tokens.
 */
class ByteTokenizer implements Tokenizer, TokenPieces {
  readonly vocabSize = BYTE_VOCAB_SIZE;
  readonly bosTokenId = BYTE_BOS_ID;
  readonly eosTokenIds: readonly number[] = [BYTE_EOS_ID];
  readonly hasChatTemplate = true;
  readonly stripsLeadingSpace = false;
  readonly pieces: TokenPieces = this;
  private readonly template = new ChatTemplate(DEMO_CHAT_TEMPLATE, "the byte tokenizer's built-in template", {
    bos_token: "<|bos|>",
    eos_token: "<|eos|>",
  });

  encode(text: string, options?: EncodeOptions): number[] {
    const bytes = utf8Encoder.encode(text);
    const out = (options?.addSpecialTokens ?? true) ? [BYTE_BOS_ID] : [];
    for (const b of bytes) out.push(b);
    return out;
  }

  decode(ids: readonly number[], options?: DecodeOptions): string {
    return decodeWithPieces(this, ids, options?.skipSpecialTokens ?? true);
  }

  bytes(id: number): Uint8Array {
    return BYTES[id] ?? SPECIAL_BYTES.get(id) ?? EMPTY;
  }

  isSpecial(id: number): boolean {
    return id === BYTE_BOS_ID || id === BYTE_EOS_ID;
  }

  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string {
    return this.template.render(messages, options?.addGenerationPrompt ?? true, options?.variables);
  }
}

export function createByteTokenizer(): Tokenizer {
  return new ByteTokenizer();
}
