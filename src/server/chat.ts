import type { FastifyReply, FastifyRequest } from "fastify";
import type { EngineClient, GenerateRequest } from "../engine/api.js";
import { ChatTemplateError } from "../tokenizer/prompt-ids.js";
import type { ChatMessage } from "../tokenizer/types.js";
import { checkModel, type RouteContext, requestId } from "./context.js";
import { badRequest, promptTooLong } from "./errors.js";
import { Generation } from "./generation.js";
import { chatLogprobs } from "./logprobs.js";
import { abortOnDisconnect, collectChoices, streamChoices, usage } from "./respond.js";
import { toSamplingParams } from "./sampling.js";
import { type ChatRequestMessage, chatRequestSchema, parseBody } from "./schemas.js";

/** POST /v1/chat/completions */
export async function handleChat(ctx: RouteContext, request: FastifyRequest, reply: FastifyReply) {
  const arrivalMs = performance.now();
  const body = parseBody(chatRequestSchema, request.body);
  const engine = ctx.slot.get();
  checkModel(engine, body.model);
  const texts = ctx.slot.tokenTexts();
  if (body.top_logprobs != null && body.logprobs !== true) {
    throw badRequest("top_logprobs requires logprobs to be true", "top_logprobs");
  }
  const logprobs = body.logprobs === true ? (body.top_logprobs ?? 0) : null;
  const n = body.n ?? 1;
  const prompt = await chatPromptIds(engine, body.messages);
  const requested = body.max_completion_tokens ?? body.max_tokens ?? null;
  const param = body.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens";
  const id = requestId("chatcmpl");
  const requests: GenerateRequest[] = [];
  for (let i = 0; i < n; i++) {
    const params = toSamplingParams(
      body,
      { requested, fallback: null, param, promptParam: "messages" },
      prompt.length,
      engine.model.contextLength,
      logprobs,
      i,
      engine.model.vocabSize,
      engine.model.generation,
    );
    requests.push({ id: `${id}-${i}`, promptTokenIds: prompt, params });
  }

  const generation = new Generation(engine, requests, ctx.metrics, arrivalMs);
  abortOnDisconnect(reply, generation);
  await generation.start();

  const created = Math.floor(Date.now() / 1000);
  const model = engine.model.id;
  const object = "chat.completion.chunk";
  if (body.stream) {
    const includeUsage = body.stream_options?.include_usage === true;
    const extra = includeUsage ? { usage: null } : {};
    const started = new Array<boolean>(n).fill(false);
    return streamChoices(
      reply,
      generation,
      ({ index, event }) => {
        const out: unknown[] = [];
        // OpenAI opens every choice with a role-only delta.
        if (!started[index]) {
          started[index] = true;
          const delta = { role: "assistant", content: "" };
          out.push({
            id,
            object,
            created,
            model,
            choices: [{ index, delta, logprobs: null, finish_reason: null }],
            ...extra,
          });
        }
        const hasLogprobs = logprobs != null && (event.logprobs?.length ?? 0) > 0;
        if (event.text || hasLogprobs || event.finished) {
          const choice = {
            index,
            delta: event.text ? { content: event.text } : {},
            logprobs:
              logprobs != null ? { content: chatLogprobs(event.logprobs ?? [], texts, logprobs) } : null,
            finish_reason: event.finished ? (event.finishReason ?? "stop") : null,
          };
          out.push({ id, object, created, model, choices: [choice], ...extra });
        }
        return out;
      },
      (completionTokens) =>
        includeUsage
          ? [{ id, object, created, model, choices: [], usage: usage(prompt.length, completionTokens) }]
          : [],
    );
  }

  const results = await collectChoices(generation, n);
  let completionTokens = 0;
  const choices = results.map((r, index) => {
    completionTokens += r.completionTokens;
    return {
      index,
      message: { role: "assistant", content: r.text },
      logprobs: logprobs != null ? { content: chatLogprobs(r.logprobs, texts, logprobs) } : null,
      finish_reason: r.finishReason,
    };
  });
  return {
    id,
    object: "chat.completion",
    created,
    model,
    choices,
    usage: usage(prompt.length, completionTokens),
  };
}

/**
 * Renders the conversation into prompt token ids through the engine's prompt encoder (the chat
 * template, or a plain transcript; large conversations off the event loop). One whose bound
 * alone exceeds the context is refused before it is rendered.
 */
async function chatPromptIds(
  engine: EngineClient,
  messages: readonly ChatRequestMessage[],
): Promise<number[]> {
  const turns: ChatMessage[] = messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content:
      m.content == null
        ? ""
        : typeof m.content === "string"
          ? m.content
          : m.content.map((p) => p.text).join(""),
  }));
  let least = 0;
  for (const t of turns) least += engine.prompts.minTokens(t.content);
  if (least >= engine.model.contextLength)
    throw promptTooLong(least, engine.model.contextLength, "messages", true);
  let ids: number[];
  try {
    ids = await engine.prompts.chat(turns);
  } catch (err) {
    if (err instanceof ChatTemplateError) throw badRequest(err.message, "messages");
    throw err;
  }
  if (ids.length === 0) throw badRequest("the messages render to an empty prompt", "messages");
  return ids;
}
