import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type LiveServer, startServer } from "./helpers.js";

describe("POST /v1/chat/completions (stories260K, real engine)", () => {
  let s: LiveServer;
  before(async () => {
    s = await startServer();
  });
  after(() => s.close());

  const messages = [
    { role: "system" as const, content: "Tell a story." },
    { role: "user" as const, content: "Once upon a time" },
  ];

  it("answers with an assistant message, usage and finish_reason", async () => {
    const r = await s.client.chat.completions.create({
      model: "stories260K",
      messages,
      max_tokens: 12,
      temperature: 0,
    });
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0]!.message.role, "assistant");
    assert.ok(r.choices[0]!.message.content!.length > 0);
    assert.equal(r.choices[0]!.finish_reason, "length");
    assert.equal(r.usage?.completion_tokens, 12);
    assert.ok((r.usage?.prompt_tokens ?? 0) > 5);
    assert.equal(r.usage?.total_tokens, r.usage!.prompt_tokens + 12);
  });

  it("the chat prompt is the plain transcript for a model without a template (same tokens as a completion)", async () => {
    const transcript = "system: Tell a story.\nuser: Once upon a time\nassistant:";
    const [chat, completion] = await Promise.all([
      s.client.chat.completions.create({ model: "stories260K", messages, max_tokens: 20, temperature: 0 }),
      s.client.completions.create({
        model: "stories260K",
        prompt: transcript,
        max_tokens: 20,
        temperature: 0,
      }),
    ]);
    assert.equal(chat.choices[0]!.message.content, completion.choices[0]!.text);
    assert.equal(chat.usage?.prompt_tokens, completion.usage?.prompt_tokens);
  });

  it("streams a role delta first, then content, finish_reason, usage and [DONE]", async () => {
    const whole = await s.client.chat.completions.create({
      model: "stories260K",
      messages,
      max_tokens: 25,
      temperature: 0,
    });
    const stream = await s.client.chat.completions.create({
      model: "stories260K",
      messages,
      max_completion_tokens: 25,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const deltas: { role?: string; content?: string | null }[] = [];
    let finish: string | null = null;
    let usage = null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, "chat.completion.chunk");
      if (chunk.usage) usage = chunk.usage;
      for (const ch of chunk.choices) {
        deltas.push(ch.delta);
        finish = ch.finish_reason ?? finish;
      }
    }
    assert.equal(deltas[0]!.role, "assistant");
    assert.equal(deltas.map((d) => d.content ?? "").join(""), whole.choices[0]!.message.content);
    assert.equal(finish, "length");
    assert.equal(usage?.completion_tokens, 25);
  });

  it("logprobs with top_logprobs: one entry per token, text matching the content", async () => {
    const r = await s.client.chat.completions.create({
      model: "stories260K",
      messages,
      max_tokens: 10,
      temperature: 0,
      logprobs: true,
      top_logprobs: 4,
    });
    const content = r.choices[0]!.logprobs!.content!;
    assert.equal(content.length, 10);
    assert.equal(content.map((c) => c.token).join(""), r.choices[0]!.message.content);
    for (const entry of content) {
      assert.equal(entry.top_logprobs.length, 4);
      assert.equal(entry.top_logprobs[0]!.logprob, entry.logprob, "greedy takes the most likely token");
      assert.deepEqual(entry.bytes, Array.from(Buffer.from(entry.token)));
      for (let i = 1; i < 4; i++)
        assert.ok(entry.top_logprobs[i]!.logprob <= entry.top_logprobs[i - 1]!.logprob);
    }
  });

  it("seeded sampling with penalties and extensions is reproducible", async () => {
    const ask = () =>
      s.client.chat.completions.create({
        model: "stories260K",
        messages,
        max_tokens: 30,
        temperature: 0.9,
        top_p: 0.95,
        presence_penalty: 0.5,
        frequency_penalty: 0.3,
        seed: 11,
        // vLLM-style extensions pass through the OpenAI client as extra body fields.
        ...({ top_k: 40, min_p: 0.02, repetition_penalty: 1.1 } as object),
      });
    const [a, b] = await Promise.all([ask(), ask()]);
    assert.equal(a.choices[0]!.message.content, b.choices[0]!.message.content);
  });
});
