import type { GenerationDefaults } from "../model/types.js";
import type { LogitBias, SamplingParams } from "./api.js";
import { InvalidRequestError } from "./errors.js";
import { compileSchema, SchemaError } from "./json-schema.js";
import { toolCallNode } from "./tool-call-schema.js";

export const MAX_LOGPROBS = 20;
/** OpenAI's documented range; higher values only flatten the distribution further. */
export const MAX_TEMPERATURE = 2;
export const MAX_REPETITION_PENALTY = 10;
/** OpenAI's bounds for logit_bias: each bias in [-100, 100], at most 300 tokens. */
export const MAX_LOGIT_BIAS = 100;
export const MAX_LOGIT_BIAS_TOKENS = 300;
const MAX_TOKEN_ID = 2 ** 31 - 1;

/**
 * What resolveSamplingParams takes: any subset of the parameters, with logit_bias either resolved
 * or as OpenAI's map from token id (a decimal string) to bias.
 */
export type SamplingInput = {
  -readonly [K in Exclude<keyof SamplingParams, "logitBias">]?: SamplingParams[K];
} & {
  logitBias?: LogitBias | Readonly<Record<string, number>> | null;
};

/**
 * The one home of sampling defaults and bounds, used by every front end (`serve`, `generate`):
 * fills what the request left out from the model's generation_config, then built-in defaults,
 * and validates every field, naming the bad one. With `vocabSize`, token ids in logit_bias must
 * also be inside the vocabulary.
 */
export function resolveSamplingParams(
  input: SamplingInput,
  defaults: GenerationDefaults = {},
  vocabSize?: number,
): SamplingParams {
  const p: SamplingParams = {
    temperature: input.temperature ?? defaults.temperature ?? 1,
    topK: input.topK ?? defaults.topK ?? 0,
    topP: input.topP ?? defaults.topP ?? 1,
    minP: input.minP ?? 0,
    repetitionPenalty: input.repetitionPenalty ?? defaults.repetitionPenalty ?? 1,
    frequencyPenalty: input.frequencyPenalty ?? 0,
    presencePenalty: input.presencePenalty ?? 0,
    logitBias: resolveLogitBias(input.logitBias, vocabSize),
    seed: input.seed ?? null,
    maxTokens: input.maxTokens ?? defaults.maxNewTokens ?? 256,
    stop: input.stop ?? [],
    stopTokenIds: input.stopTokenIds ?? [],
    ignoreEos: input.ignoreEos ?? false,
    logprobs: input.logprobs ?? null,
    responseFormat: input.responseFormat ?? "text",
    jsonSchema: input.jsonSchema ?? null,
    structuredThink: input.structuredThink ?? null,
    toolCalls: input.toolCalls ?? null,
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
  checkStructured(p, check);
  return p;
}

/** response_format's fields: a known format, think tags that are token ids, a schema that compiles. */
function checkStructured(p: SamplingParams, check: (ok: boolean, param: string, what: string) => void): void {
  check(
    p.responseFormat === "text" || p.responseFormat === "json_object" || p.responseFormat === "json_schema",
    "response_format",
    'must be "text", "json_object" or "json_schema"',
  );
  const think = p.structuredThink;
  check(
    think === null ||
      (Number.isInteger(think.open) &&
        think.open >= 0 &&
        Number.isInteger(think.close) &&
        think.close >= 0 &&
        typeof think.inside === "boolean"),
    "structured_think",
    "must name the think tags' token ids",
  );
  checkToolCalls(p.toolCalls, check);
  if (p.responseFormat === "json_schema") {
    try {
      compileSchema(p.jsonSchema);
    } catch (e) {
      if (e instanceof SchemaError)
        throw new InvalidRequestError(
          `response_format json_schema: ${e.message}`,
          "response_format.json_schema.schema",
        );
      throw e;
    }
  }
}

/**
 * logit_bias as the sampler applies it: parallel arrays of token ids and biases (null when empty).
 * OpenAI's map has token ids as decimal string keys; a resolved LogitBias is checked again.
 */
function resolveLogitBias(
  input: LogitBias | Readonly<Record<string, number>> | null | undefined,
  vocabSize: number | undefined,
): LogitBias | null {
  if (input == null) return null;
  // Annotated, so that TypeScript's flow analysis knows a failed check ends the function.
  const fail: (what: string) => never = (what) => {
    throw new InvalidRequestError(`logit_bias ${what}`, "logit_bias");
  };
  if (typeof input !== "object" || Array.isArray(input))
    fail(`must be an object mapping token ids to biases in [-${MAX_LOGIT_BIAS}, ${MAX_LOGIT_BIAS}]`);
  const entries: [key: string, id: number, bias: unknown][] = [];
  if (isResolved(input)) {
    if (input.ids.length !== input.biases.length) fail("must have as many token ids as biases");
    for (let i = 0; i < input.ids.length; i++)
      entries.push([String(input.ids[i]), input.ids[i]!, input.biases[i]]);
  } else {
    for (const [key, bias] of Object.entries(input)) {
      if (!/^[0-9]+$/.test(key))
        fail(`keys must be token ids (non-negative integers), got ${JSON.stringify(key.slice(0, 32))}`);
      entries.push([key, Number(key), bias]);
    }
  }
  if (entries.length > MAX_LOGIT_BIAS_TOKENS)
    fail(`has ${entries.length} tokens; at most ${MAX_LOGIT_BIAS_TOKENS} are allowed`);
  // "7" and "07" name the same token: the later one wins, as a repeated JSON key would.
  const byId = new Map<number, number>();
  for (const [key, id, bias] of entries) {
    if (!Number.isInteger(id) || id < 0 || id > MAX_TOKEN_ID)
      fail(`token ${key.slice(0, 32)} is not a token id`);
    if (vocabSize !== undefined && id >= vocabSize)
      fail(`token ${id} is outside the vocabulary (${vocabSize})`);
    if (typeof bias !== "number" || !Number.isFinite(bias) || Math.abs(bias) > MAX_LOGIT_BIAS)
      fail(
        `bias for token ${id} must be a number in [-${MAX_LOGIT_BIAS}, ${MAX_LOGIT_BIAS}], got ${String(bias)}`,
      );
    byId.set(id, bias);
  }
  if (byId.size === 0) return null;
  return { ids: Int32Array.from(byId.keys()), biases: Float32Array.from(byId.values()) };
}

function isResolved(x: object): x is LogitBias {
  const r = x as Partial<LogitBias>;
  return r.ids instanceof Int32Array && r.biases instanceof Float32Array;
}

/** A strict tool-call constraint (chat-tools.ts builds it): its tokens ids, and schemas that compile. */
function checkToolCalls(
  tc: SamplingParams["toolCalls"],
  check: (ok: boolean, param: string, what: string) => void,
): void {
  if (tc === null) return;
  const tokenOrNull = (t: unknown) => t === null || (Number.isInteger(t) && (t as number) >= 0);
  check(
    Array.isArray(tc.tools) &&
      tc.tools.length > 0 &&
      tc.tools.every((t) => typeof t.name === "string") &&
      (tc.argsKey === "arguments" || tc.argsKey === "parameters") &&
      typeof tc.list === "boolean" &&
      (tc.named === null ||
        (tokenOrNull(tc.named.start) &&
          tokenOrNull(tc.named.message) &&
          typeof tc.named.recipient === "string" &&
          (tc.named.header === null || typeof tc.named.header === "string") &&
          (tc.named.calling === null || tc.tools.some((t) => t.name === tc.named!.calling)))) &&
      tokenOrNull(tc.open) &&
      tokenOrNull(tc.close) &&
      (tc.opened === null || typeof tc.opened === "string"),
    "tools",
    "must describe strict tool calls (names, token ids of the call's tags)",
  );
  try {
    toolCallNode(tc);
  } catch (e) {
    if (e instanceof SchemaError) throw new InvalidRequestError(`strict tools: ${e.message}`, "tools");
    throw e;
  }
}
