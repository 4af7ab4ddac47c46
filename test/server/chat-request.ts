import assert from "node:assert/strict";
import type OpenAI from "openai";
import { type LiveServer, postRaw } from "./helpers.js";

/** A request body as a test writes it (fields the OpenAI client's types may not know included). */
export type Body = Record<string, unknown>;

/** One chat completion of `s` (greedy, one user turn "hi", unless `body` says otherwise): its first choice and usage. */
export async function chatOnce(
  s: LiveServer,
  body: Body,
): Promise<{ choice: OpenAI.Chat.Completions.ChatCompletion.Choice; usage: OpenAI.CompletionUsage }> {
  const r = await s.client.chat.completions.create({
    model: s.engine.model.id,
    messages: [{ role: "user", content: "hi" }],
    temperature: 0,
    ...body,
  } as unknown as Parameters<typeof s.client.chat.completions.create>[0] & { stream?: false });
  return { choice: r.choices[0]!, usage: r.usage! };
}

/** Each case's body (over `base`) posted to `url` gets a 400 naming its parameter, with its message. */
export async function expectBadRequests(
  url: string,
  base: Body,
  cases: readonly (readonly [Body, string, RegExp])[],
) {
  for (const [extra, param, message] of cases) {
    const r = await postRaw(url, JSON.stringify({ ...base, ...extra }));
    assert.equal(r.status, 400, JSON.stringify(extra));
    assert.equal(r.json.error?.param, param, JSON.stringify(extra));
    assert.match(r.json.error!.message, message);
  }
}
