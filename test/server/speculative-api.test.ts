// Speculative decoding as an API client sees it: the same text, usage and logprobs as a server that
// decodes one token a step, streamed (several tokens may come in one step) or whole; /metrics counts
// the draft tokens proposed and kept.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type LiveServer, metric, startServer, storiesModelPath } from "./helpers.js";

const PROMPT = "Once upon a time, there was a little girl named Lily. Lily";

describe("speculative decoding through the API", () => {
  let on: LiveServer;
  let off: LiveServer;
  before(async () => {
    // The demo model is below the size speculation is on by default for: asked for here.
    on = await startServer({ model: storiesModelPath(), speculativeTokens: 3 });
    off = await startServer({ model: storiesModelPath(), speculativeTokens: 0 });
  });
  after(async () => {
    await on?.close();
    await off?.close();
  });

  const complete = (s: LiveServer) =>
    s.client.completions.create({
      model: s.engine.model.id,
      prompt: PROMPT,
      max_tokens: 96,
      temperature: 0,
      logprobs: 1,
    });

  it("gives the text, usage and logprobs of one token a step, and /metrics counts drafts", async () => {
    const want = await complete(off);
    const got = await complete(on);
    assert.equal(got.choices[0]!.text, want.choices[0]!.text);
    assert.deepEqual(got.usage, want.usage);
    assert.deepEqual(got.choices[0]!.logprobs!.tokens, want.choices[0]!.logprobs!.tokens);
    const m = await (await fetch(`${on.url}/metrics`)).text();
    const drafted = metric(m, "lamina_spec_decode_draft_tokens_total");
    const kept = metric(m, "lamina_spec_decode_accepted_tokens_total");
    assert.ok(kept > 0 && kept <= drafted, `${kept} of ${drafted} draft tokens kept`);
    const none = await (await fetch(`${off.url}/metrics`)).text();
    assert.equal(metric(none, "lamina_spec_decode_draft_tokens_total"), 0);
  });

  it("streams a chat reply whose chunks join to the same text", async () => {
    const ask = (s: LiveServer) =>
      s.client.chat.completions.create({
        model: s.engine.model.id,
        messages: [{ role: "user", content: PROMPT }],
        max_tokens: 64,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      });
    const read = async (s: LiveServer) => {
      let text = "";
      let tokens = -1;
      for await (const chunk of await ask(s)) {
        text += chunk.choices[0]?.delta?.content ?? "";
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
      }
      return { text, tokens };
    };
    const want = await read(off);
    const got = await read(on);
    assert.equal(got.text, want.text);
    assert.equal(got.tokens, want.tokens);
    assert.ok(want.tokens > 10);
  });
});
