import type { FastifyReply, FastifyRequest } from "fastify";
import type { EngineClient, GenerateRequest, TokenEvent } from "../engine/api.js";
import { ChatTemplateError } from "../tokenizer/prompt-ids.js";
import type { ChatMessage } from "../tokenizer/types.js";
import { checkModel, type RouteContext, requestId } from "./context.js";
import { badRequest, promptTooLong } from "./errors.js";
import { Generation } from "./generation.js";
import { chatLogprobs, type TokenTexts } from "./logprobs.js";
import { type ReplySplitter, replySplitter, splitReply } from "./reply-parts.js";
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
  const variables = {
    ...(body.chat_template_kwargs ?? {}),
    ...(body.reasoning_effort ? { reasoning_effort: body.reasoning_effort } : {}),
  };
  const prompt = await chatPromptIds(engine, body.messages, variables);
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
  // Reasoning and answer apart, by token: gpt-oss's harmony channels, think tags (reply-parts.ts).
  const splitter = replySplitter(engine.tokenizer, prompt);
  if (body.stream) {
    const includeUsage = body.stream_options?.include_usage === true;
    const head = {
      id,
      object: "chat.completion.chunk",
      created,
      model,
      ...(includeUsage ? { usage: null } : {}),
    };
    const streams = splitter ? Array.from({ length: n }, splitter) : null;
    return streamChat(reply, generation, {
      head,
      n,
      logprobs,
      texts,
      streams,
      includeUsage,
      promptTokens: prompt.length,
    });
  }

  const results = await collectChoices(generation, n);
  let completionTokens = 0;
  const choices = results.map((r, index) => {
    completionTokens += r.completionTokens;
    return {
      index,
      message: splitter ? partsMessage(splitter(), r.tokenIds) : { role: "assistant", content: r.text },
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

/** What a streamed chat reply's chunks are made of. */
interface ChatStream {
  /** Every chunk's id, object, created and model (and usage: null when usage is asked for). */
  readonly head: Record<string, unknown>;
  readonly n: number;
  readonly logprobs: number | null;
  readonly texts: TokenTexts;
  /** Per choice, its split into reasoning and answer (reply-parts.ts); null: the text as it comes. */
  readonly streams: readonly ReplySplitter[] | null;
  readonly includeUsage: boolean;
  readonly promptTokens: number;
}

/** Streams a started chat generation: a role-only delta first, then each choice's text (or parts). */
function streamChat(reply: FastifyReply, generation: Generation, c: ChatStream): Promise<void> {
  const started = new Array<boolean>(c.n).fill(false);
  const { head, logprobs } = c;
  return streamChoices(
    reply,
    generation,
    ({ index, event }) => {
      const out: unknown[] = [];
      // OpenAI opens every choice with a role-only delta.
      if (!started[index]) {
        started[index] = true;
        const delta = { role: "assistant", content: "" };
        out.push({ ...head, choices: [{ index, delta, logprobs: null, finish_reason: null }] });
      }
      const delta = c.streams
        ? partsDelta(c.streams[index]!, event)
        : event.text
          ? { content: event.text }
          : {};
      const hasLogprobs = logprobs != null && (event.logprobs?.length ?? 0) > 0;
      if (Object.keys(delta).length > 0 || hasLogprobs || event.finished) {
        const choice = {
          index,
          delta,
          logprobs:
            logprobs != null ? { content: chatLogprobs(event.logprobs ?? [], c.texts, logprobs) } : null,
          finish_reason: event.finished ? (event.finishReason ?? "stop") : null,
        };
        out.push({ ...head, choices: [choice] });
      }
      return out;
    },
    (completionTokens) =>
      c.includeUsage ? [{ ...head, choices: [], usage: usage(c.promptTokens, completionTokens) }] : [],
  );
}

/**
 * A split reply's new tokens as a delta: its reasoning and its answer, each only when the tokens
 * added to it. The text is the tokens' own, so a stop string ends the reply without being cut from it.
 */
function partsDelta(
  stream: ReplySplitter,
  event: TokenEvent,
): { reasoning_content?: string; content?: string } {
  const t = event.finished ? splitReply(stream, event.tokenIds) : stream.push(event.tokenIds);
  return {
    ...(t.reasoning ? { reasoning_content: t.reasoning } : {}),
    ...(t.content ? { content: t.content } : {}),
  };
}

/** A whole split reply as the assistant message: the answer, and the reasoning where there was some. */
function partsMessage(splitter: ReplySplitter, ids: readonly number[]) {
  const { reasoning, content } = splitReply(splitter, ids);
  return { role: "assistant", content, ...(reasoning ? { reasoning_content: reasoning } : {}) };
}

/**
 * Renders the conversation into prompt token ids through the engine's prompt encoder (the chat
 * template, or a plain transcript; large conversations off the event loop). One whose bound
 * alone exceeds the context is refused before it is rendered.
 */
async function chatPromptIds(
  engine: EngineClient,
  messages: readonly ChatRequestMessage[],
  variables: Readonly<Record<string, unknown>>,
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
    ids = await engine.prompts.chat(turns, Object.keys(variables).length > 0 ? variables : undefined);
  } catch (err) {
    if (err instanceof ChatTemplateError) throw badRequest(err.message, "messages");
    throw err;
  }
  if (ids.length === 0) throw badRequest("the messages render to an empty prompt", "messages");
  return ids;
}
