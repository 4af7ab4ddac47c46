import type { Tokenizer } from "../tokenizer/types.js";
import { HarmonyStream, harmonyMarkers } from "./harmony.js";
import { MistralCallStream, mistralMarkers } from "./mistral-calls.js";
import { ThinkStream, thinkMarkers } from "./think.js";
import type { ParsedToolCall, ToolCallFormat } from "./tool-calls.js";

/** A chat reply's text in two parts, the model's reasoning and its answer, and calls read by token. */
export interface ReplyParts {
  reasoning: string;
  content: string;
  /** Tool calls the format marks by token (harmony's); text formats' are read from content. */
  calls?: ParsedToolCall[];
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
 * (whose prompts are plain transcripts). Returns a maker of one splitter a reply. `tools`: the
 * call format of a request that offered tools; harmony's messages to functions are then calls,
 * not content, and Mistral's calls after `[TOOL_CALLS]` are read by the splitter of its own.
 */
export function replySplitter(
  tokenizer: Tokenizer,
  prompt: readonly number[],
  tools: ToolCallFormat | null = null,
): (() => ReplySplitter) | null {
  if (!tokenizer.hasChatTemplate) return null;
  const harmony = harmonyMarkers(tokenizer);
  if (harmony) return () => new HarmonyStream(tokenizer, harmony, tools === "harmony");
  const mistral = tools === "mistral" ? mistralMarkers(tokenizer) : null;
  if (mistral) return () => new MistralCallStream(tokenizer, mistral);
  const think = thinkMarkers(tokenizer);
  if (think) return () => new ThinkStream(tokenizer, think, prompt);
  return null;
}
