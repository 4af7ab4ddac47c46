import type { Tokenizer } from "../tokenizer/types.js";
import { HarmonyStream, harmonyMarkers } from "./harmony.js";
import { ThinkStream, thinkMarkers } from "./think.js";

/** A chat reply's text in two parts: the model's reasoning and its answer. */
export interface ReplyParts {
  reasoning: string;
  content: string;
}

/** Splits one reply's tokens into its parts as they arrive (whole reply: push all, then flush). */
export interface ReplySplitter {
  /** The text the new tokens add to each part. */
  push(ids: readonly number[]): ReplyParts;
  /** What is left at the end of the reply. */
  flush(): ReplyParts;
}

/**
 * How a chat reply of this model splits into reasoning and answer: gpt-oss's harmony channels
 * (harmony.ts), or think tags (think.ts); null for a model with neither, or without a chat template
 * (whose prompts are plain transcripts). Returns a maker of one splitter a reply.
 */
export function replySplitter(tokenizer: Tokenizer, prompt: readonly number[]): (() => ReplySplitter) | null {
  if (!tokenizer.hasChatTemplate) return null;
  const harmony = harmonyMarkers(tokenizer);
  if (harmony) return () => new HarmonyStream(tokenizer, harmony);
  const think = thinkMarkers(tokenizer);
  if (think) return () => new ThinkStream(tokenizer, think, prompt);
  return null;
}

/** A whole reply's parts. */
export function splitReply(splitter: ReplySplitter, ids: readonly number[]): ReplyParts {
  const t = splitter.push(ids);
  const rest = splitter.flush();
  return { reasoning: t.reasoning + rest.reasoning, content: t.content + rest.content };
}
