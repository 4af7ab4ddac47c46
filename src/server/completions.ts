import type { FastifyReply, FastifyRequest } from "fastify";
import type { EngineClient, GenerateRequest } from "../engine/api.js";
import { checkModel, type RouteContext, requestId } from "./context.js";
import { badRequest, promptTooLong } from "./errors.js";
import { Generation } from "./generation.js";
import { appendCompletionLogprobs, emptyCompletionLogprobs, type TokenTexts } from "./logprobs.js";
import { abortOnDisconnect, collectChoices, promptCachedTokens, streamChoices, usage } from "./respond.js";
import { checkStructuredFormat, toSamplingParams } from "./sampling.js";
import { type CompletionRequest, completionRequestSchema, parseBody } from "./schemas.js";

/** OpenAI's default max_tokens for the legacy completions endpoint. */
const DEFAULT_MAX_TOKENS = 16;

/** POST /v1/completions */
export async function handleCompletion(ctx: RouteContext, request: FastifyRequest, reply: FastifyReply) {
  const arrivalMs = performance.now();
  const body = parseBody(completionRequestSchema, request.body);
  const engine = ctx.slot.get();
  checkModel(engine, body.model);
  const texts = ctx.slot.tokenTexts();
  const n = body.n ?? 1;
  if (body.best_of != null && body.best_of !== n)
    throw badRequest("best_of other than n is not supported", "best_of");
  checkStructuredFormat(engine.tokenizer, body.response_format?.type);

  const prompts = await promptTokenIds(body.prompt, engine);
  const id = requestId("cmpl");
  const requests = generateRequests(body, engine, prompts, n, id);
  let promptTokens = 0;
  for (const p of prompts) promptTokens += p.length;

  const generation = new Generation(engine, requests, ctx.metrics, arrivalMs);
  abortOnDisconnect(reply, generation);
  await generation.start();

  const out: CompletionOutput = {
    id,
    created: Math.floor(Date.now() / 1000),
    model: engine.model.id,
    promptTokens,
    logprobs: body.logprobs ?? null,
    texts,
    choices: requests.length,
    n,
  };
  if (body.stream)
    return streamCompletion(reply, generation, out, body.stream_options?.include_usage === true);
  return completionReply(generation, out);
}

/**
 * One engine request per (prompt, choice), choices of a prompt next to each other: the choice
 * index in the reply is the request's position. Each choice gets its own seed (choiceSeed) so n > 1
 * with a seed gives n different, reproducible samples.
 */
function generateRequests(
  body: CompletionRequest,
  engine: EngineClient,
  prompts: number[][],
  n: number,
  id: string,
): GenerateRequest[] {
  const requests: GenerateRequest[] = [];
  for (let p = 0; p < prompts.length; p++) {
    for (let i = 0; i < n; i++) {
      const params = toSamplingParams(
        body,
        {
          requested: body.max_tokens ?? null,
          fallback: DEFAULT_MAX_TOKENS,
          param: "max_tokens",
          promptParam: "prompt",
        },
        prompts[p]!.length,
        engine.model.contextLength,
        body.logprobs ?? null,
        i,
        engine.model.vocabSize,
        engine.model.generation,
      );
      requests.push({ id: `${id}-${p}-${i}`, promptTokenIds: prompts[p]!, params });
    }
  }
  return requests;
}

/** What every chunk or reply of one completion repeats, and what its logprobs are written with. */
interface CompletionOutput {
  readonly id: string;
  readonly created: number;
  readonly model: string;
  readonly promptTokens: number;
  /** Top logprobs asked for per token; null when the client asked for none. */
  readonly logprobs: number | null;
  readonly texts: TokenTexts;
  /** Number of choices (prompts × n). */
  readonly choices: number;
  /** Choices per prompt. */
  readonly n: number;
}

/**
 * The completion as server-sent events, one chunk per engine event that carries something.
 * Logprob text offsets run on across chunks of a choice, so each choice keeps its own.
 */
function streamCompletion(
  reply: FastifyReply,
  generation: Generation,
  out: CompletionOutput,
  includeUsage: boolean,
): Promise<void> {
  const { id, created, model, logprobs } = out;
  const offsets = new Array<number>(out.choices).fill(0);
  return streamChoices(
    reply,
    generation,
    ({ index, event }) => {
      if (!event.text && !event.finished && !(logprobs != null && event.logprobs?.length)) return null;
      let lp = null;
      if (logprobs != null) {
        lp = emptyCompletionLogprobs();
        offsets[index] = appendCompletionLogprobs(
          lp,
          event.logprobs ?? [],
          out.texts,
          logprobs,
          offsets[index]!,
        );
      }
      const choice = {
        index,
        text: event.text,
        logprobs: lp,
        finish_reason: event.finished ? (event.finishReason ?? "stop") : null,
      };
      return [
        {
          id,
          object: "text_completion",
          created,
          model,
          choices: [choice],
          ...(includeUsage ? { usage: null } : {}),
        },
      ];
    },
    (completionTokens, cached) =>
      includeUsage
        ? [
            {
              id,
              object: "text_completion",
              created,
              model,
              choices: [],
              usage: usage(out.promptTokens, completionTokens, promptCachedTokens(cached, out.n)),
            },
          ]
        : [],
  );
}

/** The whole completion in one JSON reply, once every choice has finished. */
async function completionReply(generation: Generation, out: CompletionOutput) {
  const results = await collectChoices(generation, out.choices);
  let completionTokens = 0;
  const choices = results.map((r, index) => {
    completionTokens += r.completionTokens;
    let lp = null;
    if (out.logprobs != null) {
      lp = emptyCompletionLogprobs();
      appendCompletionLogprobs(lp, r.logprobs, out.texts, out.logprobs, 0);
    }
    return { index, text: r.text, logprobs: lp, finish_reason: r.finishReason };
  });
  return {
    id: out.id,
    object: "text_completion",
    created: out.created,
    model: out.model,
    choices,
    usage: usage(
      out.promptTokens,
      completionTokens,
      promptCachedTokens(
        results.map((r) => r.cachedTokens),
        out.n,
      ),
    ),
  };
}

/**
 * The prompt as token-id arrays: strings go through the engine's prompt encoder (large ones off
 * the event loop; one whose bound alone exceeds the context is refused before any encoding), id
 * arrays are checked against the vocabulary.
 */
async function promptTokenIds(
  prompt: string | string[] | number[] | number[][],
  engine: EngineClient,
): Promise<number[][]> {
  const list: (string | number[])[] =
    typeof prompt === "string"
      ? [prompt]
      : typeof prompt[0] === "number"
        ? [prompt as number[]]
        : (prompt as string[] | number[][]);
  const { contextLength, vocabSize } = engine.model;
  const param = (i: number) => (list.length > 1 ? `prompt[${i}]` : "prompt");
  list.forEach((p, i) => {
    const least = typeof p === "string" ? engine.prompts.minTokens(p) : p.length;
    if (least >= contextLength) throw promptTooLong(least, contextLength, param(i), typeof p === "string");
  });
  const encoded = await Promise.all(
    list.map((p) => (typeof p === "string" ? engine.prompts.encode(p, true) : p)),
  );
  return encoded.map((ids, i) => {
    if (ids.length === 0) throw badRequest("the prompt is empty", param(i));
    for (const t of ids) {
      if (t >= vocabSize)
        throw badRequest(`prompt token ${t} is outside the vocabulary (size ${vocabSize})`, "prompt");
    }
    return ids;
  });
}
