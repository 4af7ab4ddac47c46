import type { FastifyReply, FastifyRequest } from "fastify";
import type { GenerateRequest } from "../engine/api.js";
import { checkModel, type RouteContext, requestId } from "./context.js";
import { badRequest } from "./errors.js";
import { Generation } from "./generation.js";
import { appendCompletionLogprobs, emptyCompletionLogprobs } from "./logprobs.js";
import { abortOnDisconnect, collectChoices, streamChoices, usage } from "./respond.js";
import { toSamplingParams } from "./sampling.js";
import { completionRequestSchema, parseBody } from "./schemas.js";

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

  const prompts = promptTokenIds(
    body.prompt,
    engine.tokenizer.encode.bind(engine.tokenizer),
    engine.model.vocabSize,
  );
  const id = requestId("cmpl");
  const logprobs = body.logprobs ?? null;
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
        logprobs,
        i,
        engine.model.vocabSize,
        engine.model.generation,
      );
      requests.push({ id: `${id}-${p}-${i}`, promptTokenIds: prompts[p]!, params });
    }
  }
  let promptTokens = 0;
  for (const p of prompts) promptTokens += p.length;

  const generation = new Generation(engine, requests, ctx.metrics, arrivalMs);
  abortOnDisconnect(reply, generation);
  await generation.start();

  const created = Math.floor(Date.now() / 1000);
  const model = engine.model.id;
  if (body.stream) {
    const includeUsage = body.stream_options?.include_usage === true;
    const offsets = new Array<number>(requests.length).fill(0);
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
            texts,
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
      (completionTokens) =>
        includeUsage
          ? [
              {
                id,
                object: "text_completion",
                created,
                model,
                choices: [],
                usage: usage(promptTokens, completionTokens),
              },
            ]
          : [],
    );
  }

  const results = await collectChoices(generation, requests.length);
  let completionTokens = 0;
  const choices = results.map((r, index) => {
    completionTokens += r.completionTokens;
    let lp = null;
    if (logprobs != null) {
      lp = emptyCompletionLogprobs();
      appendCompletionLogprobs(lp, r.logprobs, texts, logprobs, 0);
    }
    return { index, text: r.text, logprobs: lp, finish_reason: r.finishReason };
  });
  return {
    id,
    object: "text_completion",
    created,
    model,
    choices,
    usage: usage(promptTokens, completionTokens),
  };
}

/** The prompt as token-id arrays: strings go through the tokenizer, id arrays are checked against the vocabulary. */
function promptTokenIds(
  prompt: string | string[] | number[] | number[][],
  encode: (text: string) => number[],
  vocabSize: number,
): number[][] {
  const list: (string | number[])[] =
    typeof prompt === "string"
      ? [prompt]
      : typeof prompt[0] === "number"
        ? [prompt as number[]]
        : (prompt as string[] | number[][]);
  return list.map((p, i) => {
    const ids = typeof p === "string" ? encode(p) : p;
    if (ids.length === 0)
      throw badRequest("the prompt is empty", list.length > 1 ? `prompt[${i}]` : "prompt");
    for (const t of ids) {
      if (t >= vocabSize)
        throw badRequest(`prompt token ${t} is outside the vocabulary (size ${vocabSize})`, "prompt");
    }
    return ids;
  });
}
