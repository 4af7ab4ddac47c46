import type { FastifyReply } from "fastify";
import type { FinishReason, TokenEvent, TokenLogprob } from "../engine/api.js";
import { HttpError } from "./errors.js";
import type { ChoiceEvent, Generation } from "./generation.js";
import { SseWriter } from "./sse.js";

export interface ChoiceResult {
  text: string;
  finishReason: FinishReason;
  completionTokens: number;
  logprobs: TokenLogprob[];
  /** The choice's tokens (gpt-oss's harmony replies are split by token, chat.ts). */
  tokenIds: number[];
  /** Prompt tokens the prefix cache held when the choice was first scheduled. */
  cachedTokens: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** OpenAI's field: prompt tokens served from the prefix cache. */
  prompt_tokens_details: { cached_tokens: number };
}

export function usage(promptTokens: number, completionTokens: number, cachedTokens: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: cachedTokens },
  };
}

/**
 * A request's cached prompt tokens: choices come n to a prompt, in prompt order, and the prompt
 * counts once, with the most any of its choices found cached.
 */
export function promptCachedTokens(perChoice: readonly number[], n: number): number {
  let total = 0;
  for (let p = 0; p < perChoice.length; p += n) total += Math.max(...perChoice.slice(p, p + n));
  return total;
}

/** Cancels the generation if the client disconnects before the response is complete. */
export function abortOnDisconnect(reply: FastifyReply, generation: Generation): void {
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) generation.abort();
  });
}

/** Waits for every choice to finish and returns them in index order. */
export async function collectChoices(generation: Generation, count: number): Promise<ChoiceResult[]> {
  const parts: string[][] = Array.from({ length: count }, () => []);
  const results: ChoiceResult[] = Array.from({ length: count }, () => ({
    text: "",
    finishReason: "stop",
    completionTokens: 0,
    logprobs: [],
    tokenIds: [],
    cachedTokens: 0,
  }));
  for await (const { index, event } of generation.events()) {
    const r = results[index]!;
    if (event.text) parts[index]!.push(event.text);
    if (event.logprobs) for (const lp of event.logprobs) r.logprobs.push(lp);
    for (const id of event.tokenIds) r.tokenIds.push(id);
    if (event.cachedTokens !== undefined) r.cachedTokens = event.cachedTokens;
    r.completionTokens = event.completionTokens;
    if (event.finished) {
      r.finishReason = event.finishReason ?? "stop";
      if (r.finishReason === "error") throw generationError(event);
      if (r.finishReason === "abort") {
        throw new HttpError(
          503,
          "the request was cancelled (server shutting down)",
          "service_unavailable",
          null,
          "cancelled",
        );
      }
    }
  }
  for (let i = 0; i < count; i++) results[i]!.text = parts[i]!.join("");
  return results;
}

/**
 * Streams a started generation as server-sent events. `chunk` turns one engine event into
 * the chunk to send (or null to send nothing); `tail` gives the chunks that follow the last
 * event (usage). Errors after the headers went out are sent as an OpenAI error event.
 */
export async function streamChoices(
  reply: FastifyReply,
  generation: Generation,
  chunk: (ev: ChoiceEvent) => unknown[] | null,
  tail: (completionTokens: number, cachedTokens: readonly number[]) => unknown[],
): Promise<void> {
  reply.hijack();
  const sse = new SseWriter(reply.raw);
  // The client may have left while the request waited for admission.
  if (sse.clientGone || reply.raw.destroyed) {
    generation.abort();
    return;
  }
  sse.start();
  const completion = new Map<number, number>();
  const cached: number[] = [];
  try {
    for await (const ev of generation.events()) {
      if (sse.clientGone) break;
      completion.set(ev.index, ev.event.completionTokens);
      if (ev.event.cachedTokens !== undefined) cached[ev.index] = ev.event.cachedTokens;
      if (ev.event.finishReason === "error") throw generationError(ev.event);
      const out = chunk(ev);
      if (out) for (const c of out) await sse.send(c);
    }
    if (sse.clientGone) {
      generation.abort();
      return;
    }
    let total = 0;
    for (const v of completion.values()) total += v;
    for (const c of tail(
      total,
      Array.from(cached, (v) => v ?? 0),
    ))
      await sse.send(c);
  } catch (err) {
    generation.abort();
    const e =
      err instanceof HttpError
        ? err
        : new HttpError(500, String((err as Error)?.message ?? err), "server_error");
    await sse.send(e.body());
  }
  await sse.done();
}

/** A failed generation: 503 with the reason when it is the server's state (retry later), else 500. */
function generationError(event: TokenEvent): HttpError {
  const message = event.error ?? "generation failed";
  return event.unavailable
    ? new HttpError(503, message, "service_unavailable", null, "attention_unavailable")
    : new HttpError(500, message, "server_error");
}
