import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { kvUsed, type LiveServer, startServer, storiesModelPath, waitFor } from "./helpers.js";

const PROMPTS = [
  "Once upon a time",
  "Lily and Tom",
  "The dog",
  "One day, a little bird",
  "There was a big red ball",
  "Tim had a toy car",
  "The sun was hot",
  "Mom said",
];

describe("64 concurrent streaming clients (stories260K, real engine, max 64 running)", () => {
  let s: LiveServer;
  before(async () => {
    s = await startServer({ model: storiesModelPath(), maxRunning: 64 });
  });
  after(() => s.close());

  async function streamText(prompt: string, maxTokens: number, signal?: AbortSignal): Promise<string> {
    const stream = await s.client.completions.create(
      { model: "stories260K", prompt, max_tokens: maxTokens, temperature: 0, stream: true },
      { signal },
    );
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
    return text;
  }

  it("each client gets the same greedy tokens as when run alone; KV returns to zero", async () => {
    const alone = new Map<string, string>();
    for (const p of PROMPTS) alone.set(p, await streamText(p, 48));
    assert.equal(new Set(alone.values()).size, PROMPTS.length, "distinct prompts give distinct stories");
    // Held, the engine takes in all 64 requests before it schedules any: they must then run as
    // one batch (max 64 running), whatever the clients' timing.
    s.engine.hold();
    const all = Promise.all(
      Array.from({ length: 64 }, (_, i) => streamText(PROMPTS[i % PROMPTS.length]!, 48)),
    );
    assert.ok(await waitFor(() => s.engine.stats().waiting === 64, 10_000), "all 64 requests queued");
    s.engine.release();
    const texts = await all;
    for (let i = 0; i < 64; i++)
      assert.equal(texts[i], alone.get(PROMPTS[i % PROMPTS.length]!), `client ${i}`);
    assert.equal(s.engine.stats().peakRunning, 64, "the 64 requests ran as one batch");
    assert.ok(
      await waitFor(() => kvUsed(s.engine) === 0 && s.engine.stats().running === 0),
      "KV blocks freed",
    );
  });

  it("a client disconnecting mid-stream aborts its request and frees its KV", async () => {
    const controller = new AbortController();
    // The engine runs 12 steps and then holds, so the client reads its 5 chunks and disconnects
    // long before the request could finish, however fast the engine is.
    s.engine.hold(12);
    const stream = await s.client.completions.create(
      {
        model: "stories260K",
        prompt: "Once upon a time",
        max_tokens: 500,
        temperature: 0,
        stream: true,
        ...({ ignore_eos: true } as object),
      },
      { signal: controller.signal },
    );
    const generatedBefore = s.engine.stats().generationTokens;
    const abortsBefore = s.engine.abortsSent;
    let chunks = 0;
    let kvWhileRunning = 0;
    // The OpenAI client may still yield events it had already received when its signal fired (a
    // fast server packs dozens into one read), so the client-side count says nothing about the
    // server: stop reading at the abort and judge the server by the tokens it generated.
    try {
      for await (const _ of stream) {
        if (++chunks === 5) {
          kvWhileRunning = kvUsed(s.engine);
          controller.abort();
          break;
        }
      }
    } catch (err) {
      assert.match(String((err as Error).name), /Abort/);
    }
    assert.ok(kvWhileRunning > 0, "the request held KV blocks while streaming");
    // The engine applies messages in order: once the abort is sent, releasing cannot outrun it.
    assert.ok(await waitFor(() => s.engine.abortsSent > abortsBefore), "the server sent the abort");
    s.engine.release();
    assert.ok(
      await waitFor(() => kvUsed(s.engine) === 0 && s.engine.stats().running === 0),
      `KV freed after disconnect (used ${kvUsed(s.engine)}, running ${s.engine.stats().running})`,
    );
    const generated = s.engine.stats().generationTokens - generatedBefore;
    assert.ok(generated <= 12, `the engine stopped at the abort (${generated} of 500 tokens)`);
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    const aborted = metrics
      .split("\n")
      .find((l) => l.startsWith('lamina_request_finished_total{finish_reason="abort"}'));
    assert.equal(aborted, 'lamina_request_finished_total{finish_reason="abort"} 1');
  });

  it("a client disconnecting from a non-streaming request also frees its KV", async () => {
    const controller = new AbortController();
    s.engine.hold(5); // the request is still running when the client goes away
    const pending = fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "stories260K", prompt: "Lily", max_tokens: 500, ignore_eos: true }),
      signal: controller.signal,
    });
    assert.ok(await waitFor(() => s.engine.stats().running === 1), "request started");
    const abortsBefore = s.engine.abortsSent;
    controller.abort();
    await assert.rejects(pending);
    assert.ok(await waitFor(() => s.engine.abortsSent > abortsBefore), "the server sent the abort");
    s.engine.release();
    assert.ok(await waitFor(() => kvUsed(s.engine) === 0 && s.engine.stats().running === 0), "KV freed");
  });
});
