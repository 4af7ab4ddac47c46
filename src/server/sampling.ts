import type { SamplingParams } from "../engine/api.js";
import { InvalidRequestError } from "../engine/errors.js";
import { choiceSeed } from "../engine/rng.js";
import { resolveSamplingParams, type SamplingInput } from "../engine/sampling-params.js";
import type { GenerationDefaults } from "../model/types.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { badRequest } from "./errors.js";

/** The request fields that become SamplingParams (shared by both endpoints after validation). */
export interface SamplingFields {
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  repetition_penalty?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  seed?: number | null;
  /** Token id (decimal string) → bias; its bounds, and the vocabulary, are checked on resolving. */
  logit_bias?: Record<string, number> | null;
  stop: string[];
  stop_token_ids?: number[] | null;
  ignore_eos?: boolean | null;
  /** Chat only: JSON mode (the chat handler checked the model and request can run it). */
  response_format?:
    | { type: "text" | "json_object" }
    | { type: "json_schema"; json_schema: { schema?: Record<string, unknown> | undefined } }
    | null;
}

export interface TokenBudget {
  /** max_tokens (or max_completion_tokens) as the client sent it, if it did. */
  requested: number | null;
  /** Used when the client sent none: OpenAI's completions default is 16, chat's is "the rest of the context". */
  fallback: number | null;
  /** Which parameter to name in errors. */
  param: string;
  /** The parameter holding the prompt ("prompt" or "messages"), named when the prompt alone is too long. */
  promptParam: string;
}

/**
 * Turns validated request fields into engine SamplingParams for one choice (0-based `choice` of
 * n) of one prompt. The token budget is checked against the context here, so the client learns
 * which parameter is wrong.
 */
export function toSamplingParams(
  fields: SamplingFields,
  budget: TokenBudget,
  promptTokens: number,
  contextLength: number,
  logprobs: number | null,
  choice: number,
  vocabSize: number,
  defaults: GenerationDefaults = {},
): SamplingParams {
  const room = contextLength - promptTokens;
  if (room <= 0) {
    throw badRequest(
      `the prompt has ${promptTokens} tokens but the model's context is ${contextLength} tokens`,
      budget.promptParam,
      "context_length_exceeded",
    );
  }
  let maxTokens: number;
  if (budget.requested != null) {
    if (promptTokens + budget.requested > contextLength) {
      throw badRequest(
        `${budget.param} is ${budget.requested} but the prompt has ${promptTokens} tokens and the ` +
          `model's context is ${contextLength} tokens (at most ${room} can be generated)`,
        budget.param,
        "context_length_exceeded",
      );
    }
    maxTokens = budget.requested;
  } else {
    maxTokens = Math.min(budget.fallback ?? room, room);
  }
  const stopTokenIds = fields.stop_token_ids ?? [];
  for (const id of stopTokenIds) {
    if (id >= vocabSize)
      throw badRequest(
        `stop_token_ids: token ${id} is outside the vocabulary (${vocabSize})`,
        "stop_token_ids",
      );
  }
  // OpenAI-style fields become the engine's parameters; defaults (the model's generation_config
  // first) and bounds are the engine's, shared with `lamina generate`.
  const input: SamplingInput = {
    maxTokens,
    stop: fields.stop,
    stopTokenIds,
    logprobs,
  };
  if (fields.temperature != null) input.temperature = fields.temperature;
  // top_k -1 (vLLM's "off") is the engine's 0.
  if (fields.top_k != null) input.topK = fields.top_k === -1 ? 0 : fields.top_k;
  if (fields.top_p != null) input.topP = fields.top_p;
  if (fields.min_p != null) input.minP = fields.min_p;
  if (fields.repetition_penalty != null) input.repetitionPenalty = fields.repetition_penalty;
  if (fields.frequency_penalty != null) input.frequencyPenalty = fields.frequency_penalty;
  if (fields.presence_penalty != null) input.presencePenalty = fields.presence_penalty;
  if (fields.logit_bias != null) input.logitBias = fields.logit_bias;
  // Each of n choices draws its own stream, so they differ yet stay reproducible: a hash of
  // (seed, choice), not seed + choice, which would make choice k of seed s choice 0 of seed s + k.
  if (fields.seed != null) input.seed = choiceSeed(fields.seed, choice);
  if (fields.ignore_eos != null) input.ignoreEos = fields.ignore_eos;
  const format = fields.response_format;
  if (format?.type === "json_object") input.responseFormat = "json_object";
  if (format?.type === "json_schema") {
    input.responseFormat = "json_schema";
    // No schema: any JSON value.
    input.jsonSchema = format.json_schema.schema ?? {};
  }
  try {
    return resolveSamplingParams(input, defaults, vocabSize);
  } catch (e) {
    if (e instanceof InvalidRequestError) throw badRequest(e.message, e.param);
    throw e;
  }
}

/**
 * A structured reply (response_format json_object or json_schema) is drawn token by token under
 * the JSON automaton, which reads each token's bytes: a tokenizer that cannot give them is refused.
 */
export function checkStructuredFormat(tokenizer: Tokenizer, type: string | undefined): void {
  if ((type === "json_object" || type === "json_schema") && !tokenizer.pieces)
    throw badRequest(
      `response_format ${type} needs a tokenizer whose tokens are known as bytes; this model's is not`,
      "response_format",
    );
}
