import { z } from "zod";
import { badRequest } from "./errors.js";

/**
 * Request bodies of the OpenAI-compatible endpoints. Ranges follow OpenAI's documentation
 * where it has one, and vLLM's extensions (top_k, min_p, repetition_penalty, ignore_eos,
 * stop_token_ids) otherwise. Unknown keys are ignored, as OpenAI's server does for most.
 */

const MAX_N = 16;
const MAX_STOP = 16;
const MAX_PROMPTS = 64;
const MAX_LOGPROBS = 20;
/** Far above any context we serve; it only keeps absurd numbers out of the engine. */
const MAX_TOKENS_LIMIT = 1 << 24;
const MAX_TOKEN_ID = 2 ** 31 - 1;

/**
 * What a union answers when no form fits: the forms it accepts (zod's own message for a failed
 * union is a bare "Invalid input"). describeZodError puts the parameter in front: "stop must be…".
 */
const FORMS_PREFIX = "must be ";
function oneOf<const T extends readonly z.core.SomeType[]>(forms: string, options: T): z.ZodUnion<T> {
  return z.union(options, { error: `${FORMS_PREFIX}${forms}` });
}

const stop = oneOf(`a non-empty string or an array of at most ${MAX_STOP} non-empty strings`, [
  z.string().min(1),
  z.array(z.string().min(1)).max(MAX_STOP),
])
  .nullish()
  .transform((v) => (v == null ? [] : typeof v === "string" ? [v] : v));

/**
 * Sampling fields shared by both endpoints. The schema checks their shape; their bounds and
 * defaults are the engine's (engine/sampling-params.ts), the same for every front end.
 */
const sampling = {
  // OpenAI requires it; a server of one model does not need it (llama.cpp's and vLLM's servers
  // take its absence as that model), so a bare `curl` with only a prompt or messages is served.
  // A name other than the served model's is still a 404 (checkModel).
  model: z.string().min(1).optional(),
  temperature: z.number().nullish(),
  top_p: z.number().nullish(),
  top_k: z.number().int().nullish(),
  min_p: z.number().nullish(),
  repetition_penalty: z.number().nullish(),
  presence_penalty: z.number().nullish(),
  frequency_penalty: z.number().nullish(),
  seed: z.number().int().nullish(),
  /** Token id (decimal string) → bias; keys, bounds and the vocabulary are the engine's checks. */
  logit_bias: z.record(z.string(), z.number()).nullish(),
  max_tokens: z.number().int().min(1).max(MAX_TOKENS_LIMIT).nullish(),
  n: z.number().int().min(1).max(MAX_N).nullish(),
  stop,
  stop_token_ids: z.array(z.number().int().min(0).max(MAX_TOKEN_ID)).max(64).nullish(),
  ignore_eos: z.boolean().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  user: z.string().nullish(),
};

/** As OpenAI: stream_options only make sense on a streamed request. */
function streamOptionsNeedStream(b: { stream?: boolean | null; stream_options?: unknown }): boolean {
  return b.stream_options == null || b.stream === true;
}
const streamOptionsError = {
  message: "stream_options is only allowed when stream is true",
  path: ["stream_options"],
};

const tokenIds = z.array(z.number().int().min(0).max(MAX_TOKEN_ID)).min(1);

/** JSON mode, or structured outputs (both endpoints, as vLLM takes them). */
const responseFormat = oneOf(
  '{"type": "text"}, {"type": "json_object"} or {"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}',
  [
    z.object({ type: z.literal("text") }),
    z.object({ type: z.literal("json_object") }),
    z.object({
      type: z.literal("json_schema"),
      json_schema: z.object({
        name: z
          .string()
          .regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1 to 64 letters, digits, underscores or dashes"),
        description: z.string().optional(),
        schema: z.record(z.string(), z.json()).optional(),
        strict: z.boolean().nullish(),
      }),
    }),
  ],
);

export const completionRequestSchema = z
  .object({
    ...sampling,
    prompt: oneOf(
      "a string, an array of strings, an array of token ids or an array of arrays of token ids " +
        `(arrays not empty, at most ${MAX_PROMPTS} prompts)`,
      [
        z.string(),
        z.array(z.string()).min(1).max(MAX_PROMPTS),
        tokenIds,
        z.array(tokenIds).min(1).max(MAX_PROMPTS),
      ],
    ),
    logprobs: z.number().int().min(0).max(MAX_LOGPROBS).nullish(),
    echo: z.literal(false).nullish(),
    suffix: z.null().optional(),
    best_of: z.number().int().min(1).max(MAX_N).nullish(),
    /** vLLM's extension of the completions endpoint: the text drawn as JSON (engine/json-schema.ts). */
    response_format: responseFormat.nullish(),
  })
  .refine(streamOptionsNeedStream, streamOptionsError);
export type CompletionRequest = z.infer<typeof completionRequestSchema>;

const textPart = z.object({ type: z.literal("text"), text: z.string() });
const messageContent = oneOf(
  'a string, a non-empty array of text parts ({"type": "text", "text": "..."}) or null',
  [z.string(), z.array(textPart).min(1)],
);

/** A function's name, as OpenAI allows it (it goes into prompts and comes back in replies). */
const functionName = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1 to 64 letters, digits, underscores, dots or dashes");

/** An assistant turn's tool call, as a client sends it back (arguments: the JSON text it got). */
const toolCall = z.object({
  id: z.string().min(1).max(256),
  type: z.literal("function"),
  function: z.object({ name: functionName, arguments: z.string().max(1 << 20) }),
});

const message = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  // OpenAI lets an assistant turn with tool calls leave it out.
  content: messageContent.nullish(),
  name: z.string().optional(),
  tool_calls: z.array(toolCall).max(128).nullish(),
  tool_call_id: z.string().max(256).nullish(),
});

/**
 * A function the model may call. strict: its calls' arguments are drawn under its parameters
 * schema (the JSON Schema subset structured outputs take; chat-tools.ts).
 */
const tool = z.object({
  type: z.literal("function"),
  function: z.object({
    name: functionName,
    description: z
      .string()
      .max(1 << 16)
      .optional(),
    parameters: z.record(z.string(), z.json()).optional(),
    strict: z.boolean().nullish(),
  }),
});

/** auto (the model decides), none (no tools), or one function the reply must call. */
const toolChoice = oneOf('"none", "auto", "required" or {"type": "function", "function": {"name": "..."}}', [
  z.enum(["none", "auto", "required"]),
  z.object({ type: z.literal("function"), function: z.object({ name: functionName }) }),
]);

export const chatRequestSchema = z
  .object({
    ...sampling,
    messages: z.array(message).min(1).max(4096),
    max_completion_tokens: z.number().int().min(1).max(MAX_TOKENS_LIMIT).nullish(),
    logprobs: z.boolean().nullish(),
    top_logprobs: z.number().int().min(0).max(MAX_LOGPROBS).nullish(),
    /** OpenAI's reasoning effort, given to the chat template (gpt-oss's harmony template reads it). */
    reasoning_effort: z.enum(["minimal", "low", "medium", "high"]).nullish(),
    /**
     * vLLM's extension: more variables for the chat template (Qwen3's enable_thinking, ...). They
     * cannot replace the messages, add_generation_prompt or the special tokens.
     */
    chat_template_kwargs: z
      .record(z.string().regex(/^[A-Za-z_]\w*$/, "keys must be identifiers"), z.json())
      .refine((r) => Object.keys(r).length <= 32, "at most 32 keys")
      .nullish(),
    tools: z.array(tool).min(1).max(128).nullish(),
    tool_choice: toolChoice.nullish(),
    /** false: at most one call a reply (the first the model makes). */
    parallel_tool_calls: z.boolean().nullish(),
    /** JSON mode, or structured outputs: a schema's subset the constraint draws (engine/json-schema.ts). */
    response_format: responseFormat.nullish(),
  })
  .refine(streamOptionsNeedStream, streamOptionsError);
export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type ChatRequestMessage = z.infer<typeof message>;
export type ChatTool = z.infer<typeof tool>;
export type ChatToolChoice = z.infer<typeof toolChoice>;

/** `/tokenize` and `/detokenize` (vLLM extensions the benchmark client uses to size prompts). */
export const tokenizeRequestSchema = z.object({
  model: z.string().min(1).optional(),
  prompt: z.string(),
  add_special_tokens: z.boolean().optional(),
});
export const detokenizeRequestSchema = z.object({
  model: z.string().min(1).optional(),
  tokens: z.array(z.number().int().min(0).max(MAX_TOKEN_ID)),
});

/** The first problem zod found, phrased with the parameter path OpenAI would name. */
export function describeZodError(error: z.ZodError): { message: string; param: string | null } {
  const issue = error.issues[0];
  if (!issue) return { message: "invalid request body", param: null };
  const param = issue.path.length ? formatPath(issue.path) : null;
  if (param && issue.code === "invalid_union" && issue.message.startsWith(FORMS_PREFIX))
    return { message: `${param} ${issue.message}`, param };
  return { message: param ? `invalid parameter '${param}': ${issue.message}` : issue.message, param };
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

/** Validates a request body, throwing a 400 that names the first offending parameter. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const { message, param } = describeZodError(parsed.error);
  throw badRequest(message, param);
}
