import type { FastifyReply, FastifyRequest } from "fastify";
import type { EngineClient, GenerateRequest } from "../engine/api.js";
import { ChatTemplateError } from "../tokenizer/prompt-ids.js";
import type { ChatMessage } from "../tokenizer/types.js";
import {
  ChoiceReader,
  chatFinishReason,
  replyDeltaChunk,
  replyMessage,
  templateToolCalls,
} from "./chat-reply.js";
import { type ToolUse, toolUse } from "./chat-tools.js";
import { checkModel, type RouteContext, requestId } from "./context.js";
import { badRequest, promptTooLong } from "./errors.js";
import { Generation } from "./generation.js";
import { harmonyMarkers } from "./harmony.js";
import { chatLogprobs, type TokenTexts } from "./logprobs.js";
import { replySplitter } from "./reply-parts.js";
import { abortOnDisconnect, collectChoices, promptCachedTokens, streamChoices, usage } from "./respond.js";
import { checkStructuredFormat, toSamplingParams } from "./sampling.js";
import { type ChatRequest, type ChatRequestMessage, chatRequestSchema, parseBody } from "./schemas.js";
import { thinkMarkers } from "./think.js";
import type { ToolCallFormat } from "./tool-calls.js";

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
  checkJsonMode(engine, body);
  const { prompt, tools, forced } = await chatPrompt(engine, body);
  const requested = body.max_completion_tokens ?? body.max_tokens ?? null;
  const param = body.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens";
  const id = requestId("chatcmpl");
  const requests: GenerateRequest[] = [];
  const structuredThink = thinkBeforeValue(engine, body, prompt);
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
    requests.push({
      id: `${id}-${i}`,
      promptTokenIds: prompt,
      params: { ...params, structuredThink, toolCalls: tools?.constraint ?? null },
    });
  }

  const generation = new Generation(engine, requests, ctx.metrics, arrivalMs);
  abortOnDisconnect(reply, generation);
  await generation.start();

  const created = Math.floor(Date.now() / 1000);
  const model = engine.model.id;
  // Reasoning and answer apart, by token (reply-parts.ts), then the tool calls (chat-reply.ts).
  const splitter = replySplitter(engine.tokenizer, prompt, tools?.format ?? null);
  const reader = () => {
    const r = new ChoiceReader(splitter?.() ?? null, tools);
    if (forced) r.prime(forced.ids, forced.text);
    return r;
  };
  if (body.stream) {
    const includeUsage = body.stream_options?.include_usage === true;
    const head = {
      id,
      object: "chat.completion.chunk",
      created,
      model,
      ...(includeUsage ? { usage: null } : {}),
    };
    const readers = Array.from({ length: n }, reader);
    return streamChat(reply, generation, {
      head,
      n,
      logprobs,
      texts,
      readers,
      format: tools?.format ?? null,
      includeUsage,
      promptTokens: prompt.length,
    });
  }

  const results = await collectChoices(generation, n);
  let completionTokens = 0;
  const choices = results.map((r, index) => {
    completionTokens += r.completionTokens;
    const whole = reader().read(r.tokenIds, r.text, true);
    return {
      index,
      message: replyMessage(whole, tools?.format ?? null),
      logprobs: logprobs != null ? { content: chatLogprobs(r.logprobs, texts, logprobs) } : null,
      finish_reason: chatFinishReason(r.finishReason, whole.calls.length),
    };
  });
  return {
    id,
    object: "chat.completion",
    created,
    model,
    choices,
    usage: usage(
      prompt.length,
      completionTokens,
      promptCachedTokens(
        results.map((r) => r.cachedTokens),
        n,
      ),
    ),
  };
}

/** What a streamed chat reply's chunks are made of. */
interface ChatStream {
  /** Every chunk's id, object, created and model (and usage: null when usage is asked for). */
  readonly head: Record<string, unknown>;
  readonly n: number;
  readonly logprobs: number | null;
  readonly texts: TokenTexts;
  /** Per choice, its reader (reasoning, answer and tool calls apart). */
  readonly readers: readonly ChoiceReader[];
  /** The tool-call format the reply is read in (it shapes the calls' ids), null without tools. */
  readonly format: ToolCallFormat | null;
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
      const reader = c.readers[index]!;
      const before = reader.callCount;
      const read = reader.read(event.tokenIds, event.text, event.finished);
      const delta = replyDeltaChunk(read, before, c.format);
      const hasLogprobs = logprobs != null && (event.logprobs?.length ?? 0) > 0;
      if (Object.keys(delta).length > 0 || hasLogprobs || event.finished) {
        const choice = {
          index,
          delta,
          logprobs:
            logprobs != null ? { content: chatLogprobs(event.logprobs ?? [], c.texts, logprobs) } : null,
          finish_reason: event.finished
            ? chatFinishReason(event.finishReason ?? "stop", reader.callCount)
            : null,
        };
        out.push({ ...head, choices: [choice] });
      }
      return out;
    },
    (completionTokens, cached) =>
      c.includeUsage
        ? [
            {
              ...head,
              choices: [],
              usage: usage(c.promptTokens, completionTokens, promptCachedTokens(cached, c.n)),
            },
          ]
        : [],
  );
}

/**
 * JSON mode draws every token of the reply under a JSON automaton, so it needs the vocabulary as
 * bytes, and it cannot share the reply with a format of its own: tool calls, or gpt-oss's harmony
 * messages (their markers are not JSON).
 */
function checkJsonMode(engine: EngineClient, body: ChatRequest): void {
  const type = body.response_format?.type;
  if (type !== "json_object" && type !== "json_schema") return;
  const refuse = (why: string) => {
    throw badRequest(`response_format ${type} ${why}`, "response_format");
  };
  if (body.tools && body.tool_choice !== "none")
    refuse("cannot be combined with tools (calls are written in the template's own format)");
  checkStructuredFormat(engine.tokenizer, type);
  if (harmonyMarkers(engine.tokenizer))
    refuse("cannot constrain this model's replies: they are harmony messages, whose markers are not JSON");
}

/**
 * A structured reply of a model that thinks in tags (think.ts) reasons first, freely, and the
 * constraint starts after the block: from the reply's start where the prompt opened the block, or
 * from an open tag the reply starts with. A prompt that closed the block (Qwen3 with
 * enable_thinking false) leaves the reply to the value alone.
 */
function thinkBeforeValue(engine: EngineClient, body: ChatRequest, prompt: readonly number[]) {
  const type = body.response_format?.type;
  if (type !== "json_object" && type !== "json_schema") return null;
  const markers = thinkMarkers(engine.tokenizer);
  if (!markers || !engine.tokenizer.hasChatTemplate) return null;
  const opened = prompt.lastIndexOf(markers.open);
  const closed = prompt.lastIndexOf(markers.close);
  if (closed > opened) return null;
  return { open: markers.open, close: markers.close, inside: opened > closed };
}

/**
 * A request's prompt: the conversation through the template (with the tools it offers), then the
 * opening of a call where tool_choice requires one (`forced`, which the reply continues).
 */
async function chatPrompt(
  engine: EngineClient,
  body: ChatRequest,
): Promise<{ prompt: number[]; tools: ToolUse | null; forced: { ids: number[]; text: string } | null }> {
  const tools = toolUse(engine.tokenizer, body);
  const variables = {
    ...(body.chat_template_kwargs ?? {}),
    ...(body.reasoning_effort ? { reasoning_effort: body.reasoning_effort } : {}),
    ...(tools ? { tools: tools.tools } : {}),
  };
  const prompt = await chatPromptIds(engine, body.messages, variables);
  if (!tools?.prefill) return { prompt, tools, forced: null };
  const ids = await engine.prompts.encode(tools.prefill, false);
  return { prompt: [...prompt, ...ids], tools, forced: { ids, text: tools.prefill } };
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
    ...(m.tool_calls ? { tool_calls: templateToolCalls(m.tool_calls) } : {}),
    ...(m.tool_call_id != null ? { tool_call_id: m.tool_call_id } : {}),
    ...(m.name !== undefined ? { name: m.name } : {}),
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
