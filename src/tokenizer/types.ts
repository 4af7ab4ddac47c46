/** One chat turn, as the OpenAI API and Hugging Face chat templates know it. */
export interface ChatMessage {
  readonly role: "system" | "user" | "assistant" | "tool";
  readonly content: string;
}

export interface EncodeOptions {
  /** Add the model's special prefix tokens (BOS) as the tokenizer's post-processor says. Default true. */
  readonly addSpecialTokens?: boolean;
}

/**
 * Byte-level view of a vocabulary, so text can be streamed token by token without re-decoding
 * (see IncrementalDetokenizer). decode(ids) must equal: the UTF-8 decoding of the concatenated
 * bytes of the kept tokens, minus one leading space when stripsLeadingSpace is set.
 */
export interface TokenPieces {
  /** UTF-8 bytes token `id` adds to decoded text (a special token: its text); empty for unknown ids. */
  bytes(id: number): Uint8Array;
  /** Whether decode drops this token when skipSpecialTokens is set. */
  isSpecial(id: number): boolean;
  /** SentencePiece-style vocabularies: decode drops the one leading space the dummy prefix added. */
  readonly stripsLeadingSpace: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS/EOS/control) from the text. Default true. */
  readonly skipSpecialTokens?: boolean;
}

/** How a conversation is rendered through the chat template. */
export interface ChatTemplateOptions {
  /** End with the assistant's turn opened (the prompt for a reply). Default true. */
  readonly addGenerationPrompt?: boolean;
  /**
   * More variables for the template (transformers' apply_chat_template kwargs): gpt-oss's
   * reasoning_effort, Qwen3's enable_thinking. They cannot replace the messages, the generation
   * prompt flag or the special tokens.
   */
  readonly variables?: Readonly<Record<string, unknown>>;
}

/**
 * The one tokenizer interface the engine sees. Implementations: Hugging Face tokenizer.json
 * (through a library), llama2.c tokenizer.bin, and the random-weight demo model's byte-level tokenizer.
 */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  /** Token ids that end generation (from the tokenizer; generation_config may add more). */
  readonly eosTokenIds: readonly number[];
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** Present when the tokenizer can describe its tokens as bytes (lets streaming avoid re-decoding). */
  readonly pieces?: TokenPieces;
  /** Whether the tokenizer has a chat template (tokenizer_config.json chat_template). */
  readonly hasChatTemplate: boolean;
  /**
   * Renders messages through the chat template; throws a clear error when there is none. The text
   * already holds the template's special tokens (BOS included), so encode it with addSpecialTokens: false.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string;
}
