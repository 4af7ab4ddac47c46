// Prefix caching as an API client sees it: the usage of a request whose prompt repeats an earlier
// one reports the tokens served from the cache (OpenAI's prompt_tokens_details.cached_tokens),
// streamed or whole, chat or completions; /metrics counts them; --no-prefix-caching reports none.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type LiveServer, metric, startServer, storiesModelPath } from "./helpers.js";

const PROMPT =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her dog Max. One day she found";

describe("prefix caching in the API's usage", () => {
  let s: LiveServer;
  let off: LiveServer;
  before(async () => {
    s = await startServer({ model: storiesModelPath(), blockSize: 16 });
    off = await startServer({ model: storiesModelPath(), blockSize: 16, prefixCaching: false });
  });
  after(async () => {
    await s?.close();
    await off?.close();
  });

  const complete = (server: LiveServer) =>
    server.client.completions.create({
      model: server.engine.model.id,
      prompt: PROMPT,
      max_tokens: 4,
      temperature: 0,
    });

  it("reports the prompt tokens a repeated prompt found cached, and the same text", async () => {
    const first = await complete(s);
    const again = await complete(s);
    const n = first.usage!.prompt_tokens;
    assert.equal(first.usage!.prompt_tokens_details?.cached_tokens, 0);
    assert.equal(again.usage!.prompt_tokens_details?.cached_tokens, Math.floor((n - 1) / 16) * 16);
    assert.equal(again.choices[0]!.text, first.choices[0]!.text);
    const m = await (await fetch(`${s.url}/metrics`)).text();
    assert.equal(metric(m, "lamina_prefix_cache_queries_total"), 2 * n);
    assert.equal(metric(m, "lamina_prefix_cache_hits_total"), Math.floor((n - 1) / 16) * 16);
    assert.ok(metric(m, "lamina_prefix_cache_blocks") >= Math.floor(n / 16));
  });

  it("reports it in a streamed chat's usage chunk", async () => {
    const ask = () =>
      s.client.chat.completions.create({
        model: s.engine.model.id,
        messages: [{ role: "user", content: PROMPT }],
        max_tokens: 3,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      });
    let usage: { prompt_tokens_details?: { cached_tokens?: number } } | undefined;
    for await (const chunk of await ask()) if (chunk.usage) usage = chunk.usage;
    for await (const chunk of await ask()) if (chunk.usage) usage = chunk.usage;
    assert.ok((usage?.prompt_tokens_details?.cached_tokens ?? 0) >= 16);
  });

  it("reports none with prefix caching off", async () => {
    await complete(off);
    const again = await complete(off);
    assert.equal(again.usage!.prompt_tokens_details?.cached_tokens, 0);
  });
});
