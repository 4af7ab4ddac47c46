import { ChatTemplate } from "./chat-template.js";
import type { ChatMessage, ChatTemplateOptions, Tokenizer } from "./types.js";

/**
 * A tokenizer with another chat template (`serve --chat-template`): for a model whose files have
 * none (a base model, a GGUF file without tokenizer.chat_template) or one the user would rather
 * not use. Everything else is the tokenizer's own; the template sees its BOS and EOS as
 * bos_token and eos_token. A template that does not parse is refused here, at start-up.
 */
export function withChatTemplate(tokenizer: Tokenizer, source: string, origin: string): Tokenizer {
  const special: Record<string, string> = {};
  const text = (id: number | null | undefined) =>
    id == null ? undefined : tokenizer.decode([id], { skipSpecialTokens: false });
  const bos = text(tokenizer.bosTokenId);
  const eos = text(tokenizer.eosTokenIds[0]);
  if (bos) special.bos_token = bos;
  if (eos) special.eos_token = eos;
  const template = new ChatTemplate(source, origin, special);
  return {
    vocabSize: tokenizer.vocabSize,
    bosTokenId: tokenizer.bosTokenId,
    eosTokenIds: tokenizer.eosTokenIds,
    encode: (t, options) => tokenizer.encode(t, options),
    decode: (ids, options) => tokenizer.decode(ids, options),
    ...(tokenizer.pieces ? { pieces: tokenizer.pieces } : {}),
    hasChatTemplate: true,
    chatTemplateText: source,
    applyChatTemplate: (messages: readonly ChatMessage[], options?: ChatTemplateOptions) =>
      template.render(messages, options?.addGenerationPrompt ?? true, options?.variables),
  };
}
