import type { GenerationDefaults } from "../model/types.js";
import type { SamplingParams } from "./api.js";
import { InvalidRequestError } from "./errors.js";

export const MAX_LOGPROBS = 20;
/** OpenAI's documented range; higher values only flatten the distribution further. */
export const MAX_TEMPERATURE = 2;
export const MAX_REPETITION_PENALTY = 10;

/**
 * The one home of sampling defaults and bounds, used by every front end (`serve`, `generate`):
 * fills what the request left out from the model's generation_config, then built-in defaults,
 * and validates every field, naming the bad one.
 */
export function resolveSamplingParams(
  input: Partial<SamplingParams>,
  defaults: GenerationDefaults = {},
): SamplingParams {
  const p: SamplingParams = {
    temperature: input.temperature ?? defaults.temperature ?? 1,
    topK: input.topK ?? defaults.topK ?? 0,
    topP: input.topP ?? defaults.topP ?? 1,
    minP: input.minP ?? 0,
    repetitionPenalty: input.repetitionPenalty ?? defaults.repetitionPenalty ?? 1,
    frequencyPenalty: input.frequencyPenalty ?? 0,
    presencePenalty: input.presencePenalty ?? 0,
    seed: input.seed ?? null,
    maxTokens: input.maxTokens ?? defaults.maxNewTokens ?? 256,
    stop: input.stop ?? [],
    stopTokenIds: input.stopTokenIds ?? [],
    ignoreEos: input.ignoreEos ?? false,
    logprobs: input.logprobs ?? null,
  };
  const check = (ok: boolean, param: string, what: string): void => {
    if (!ok) throw new InvalidRequestError(`${param} ${what}`, param);
  };
  const finite = (x: number): boolean => typeof x === "number" && Number.isFinite(x);
  check(
    finite(p.temperature) && p.temperature >= 0 && p.temperature <= MAX_TEMPERATURE,
    "temperature",
    `must be a number in [0, ${MAX_TEMPERATURE}]`,
  );
  check(Number.isInteger(p.topK) && p.topK >= 0, "top_k", "must be an integer ≥ 0 (0 disables it)");
  check(finite(p.topP) && p.topP > 0 && p.topP <= 1, "top_p", "must be in (0, 1]");
  check(finite(p.minP) && p.minP >= 0 && p.minP <= 1, "min_p", "must be in [0, 1]");
  check(
    finite(p.repetitionPenalty) && p.repetitionPenalty > 0 && p.repetitionPenalty <= MAX_REPETITION_PENALTY,
    "repetition_penalty",
    `must be in (0, ${MAX_REPETITION_PENALTY}]`,
  );
  check(
    finite(p.frequencyPenalty) && Math.abs(p.frequencyPenalty) <= 2,
    "frequency_penalty",
    "must be in [-2, 2]",
  );
  check(
    finite(p.presencePenalty) && Math.abs(p.presencePenalty) <= 2,
    "presence_penalty",
    "must be in [-2, 2]",
  );
  check(
    p.seed === null || (Number.isInteger(p.seed) && Math.abs(p.seed) <= Number.MAX_SAFE_INTEGER),
    "seed",
    "must be an integer",
  );
  check(
    Number.isInteger(p.maxTokens) && p.maxTokens >= 1 && p.maxTokens <= 1 << 24,
    "max_tokens",
    "must be an integer ≥ 1",
  );
  check(
    Array.isArray(p.stop) &&
      p.stop.length <= 16 &&
      p.stop.every((s) => typeof s === "string" && s.length > 0 && s.length <= 256),
    "stop",
    "must be at most 16 non-empty strings of ≤ 256 characters",
  );
  check(
    Array.isArray(p.stopTokenIds) && p.stopTokenIds.every((t) => Number.isInteger(t) && t >= 0),
    "stop_token_ids",
    "must be non-negative integers",
  );
  check(typeof p.ignoreEos === "boolean", "ignore_eos", "must be a boolean");
  check(
    p.logprobs === null || (Number.isInteger(p.logprobs) && p.logprobs >= 0 && p.logprobs <= MAX_LOGPROBS),
    "logprobs",
    `must be an integer in [0, ${MAX_LOGPROBS}]`,
  );
  return p;
}
