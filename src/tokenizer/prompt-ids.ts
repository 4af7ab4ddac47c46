import type { ChatMessage, Tokenizer } from "./types.js";

/** The chat template refused the messages (a 400 for the caller, not a server fault). */
export class ChatTemplateError extends Error {
  constructor(message: string) {
    super(`the chat template rejected the messages: ${message}`);
    this.name = "ChatTemplateError";
  }
}

/**
 * Renders a conversation into prompt token ids. With a chat template, the rendered text usually
 * spells out BOS itself, so it is encoded without special tokens and BOS is added only if missing.
 * A model without a template (tiny story models, the random demo) gets a plain "role: content"
 * transcript ending in "assistant:". The same function runs inline and on the tokenizer thread.
 */
export function chatPromptIds(
  tok: Tokenizer,
  turns: readonly ChatMessage[],
  variables?: Readonly<Record<string, unknown>>,
): number[] {
  if (!tok.hasChatTemplate) {
    const text = `${turns.map((t) => `${t.role}: ${t.content}\n`).join("")}assistant:`;
    return tok.encode(text);
  }
  let text: string;
  try {
    text = tok.applyChatTemplate(turns, { addGenerationPrompt: true, ...(variables ? { variables } : {}) });
  } catch (err) {
    throw new ChatTemplateError((err as Error).message);
  }
  const ids = tok.encode(text, { addSpecialTokens: false });
  if (tok.bosTokenId != null && ids[0] !== tok.bosTokenId) ids.unshift(tok.bosTokenId);
  return ids;
}

/** The id of a text the vocabulary holds as one token (a chat format's marker), else null. */
export function singleTokenId(tok: Tokenizer, text: string): number | null {
  const ids = tok.encode(text, { addSpecialTokens: false });
  return ids.length === 1 && tok.decode(ids, { skipSpecialTokens: false }) === text ? ids[0]! : null;
}

/**
 * The fewest tokens `text` can encode to: every token covers at most `maxPieceBytes` bytes of
 * the (normalized) text, and normalization shrinks text by less than `slack` times. A prompt
 * whose bound already exceeds the context is refused without tokenizing it.
 */
export function minTokens(text: string, maxPieceBytes: number, slack = 4): number {
  return Math.floor(Buffer.byteLength(text, "utf8") / (maxPieceBytes * slack));
}

/** The longest token of a vocabulary, in UTF-8 bytes (special tokens included), or null if unknown. */
export function maxPieceBytes(tok: Tokenizer): number | null {
  const pieces = tok.pieces;
  if (!pieces) return null;
  let most = 1;
  for (let id = 0; id < tok.vocabSize; id++) most = Math.max(most, pieces.bytes(id).length);
  return most;
}
