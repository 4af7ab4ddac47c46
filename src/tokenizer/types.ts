/** One chat turn, as the OpenAI API and Hugging Face chat templates know it. */
export interface ChatMessage {
  readonly role: "system" | "user" | "assistant" | "tool";
  readonly content: string;
}

export interface EncodeOptions {
  /** Add the model's special prefix tokens (BOS) as the tokenizer's post-processor says. Default true. */
  readonly addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (BOS/EOS/control) from the text. Default true. */
  readonly skipSpecialTokens?: boolean;
}

/**
 * The one tokenizer interface the engine sees. Implementations: Hugging Face tokenizer.json
 * (through a library), llama2.c tokenizer.bin, and the demo model's byte-level tokenizer.
 */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  /** Token ids that end generation (from the tokenizer; generation_config may add more). */
  readonly eosTokenIds: readonly number[];
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** Whether the tokenizer has a chat template (tokenizer_config.json chat_template). */
  readonly hasChatTemplate: boolean;
  /** Renders messages through the chat template; throws a clear error when there is none. */
  applyChatTemplate(messages: readonly ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
}
