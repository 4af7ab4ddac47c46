/**
 * A tool call an assistant turn made, as Hugging Face chat templates read it: the arguments an
 * object where the request's JSON text parsed to one (templates write them with `tojson`), else the text.
 */
export interface ChatToolCall {
  readonly id?: string;
  readonly type: "function";
  readonly function: { readonly name: string; readonly arguments: unknown };
}

/**
 * One chat turn, as the OpenAI API and Hugging Face chat templates know it (the tool fields keep
 * the names the templates read).
 */
export interface ChatMessage {
  readonly role: "system" | "user" | "assistant" | "tool";
  readonly content: string;
  /** An assistant turn's tool calls. */
  readonly tool_calls?: readonly ChatToolCall[];
  /** A tool turn: the call it answers. */
  readonly tool_call_id?: string;
  /** A tool turn: the function's name; other turns: the speaker's. */
  readonly name?: string;
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
  /** The chat template's Jinja text where the tokenizer read one (tells which tool-call format it speaks). */
  readonly chatTemplateText?: string;
  /**
   * Renders messages through the chat template; throws a clear error when there is none. The text
   * already holds the template's special tokens (BOS included), so encode it with addSpecialTokens: false.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string;
}
