import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { type LiveServer, startServer } from "./helpers.js";

interface GoldenCase {
  prompt: string;
  prompt_token_ids: number[];
  generated_token_ids: number[];
}
const golden = JSON.parse(
  readFileSync(path.join(sharedDataPath("models", "stories260K"), "golden_stories260K.json"), "utf8"),
) as { cases: GoldenCase[] };

/** The text generated tokens add after the prompt (decoding them alone would drop a leading space). */
function continuation(s: LiveServer, prompt: number[], generated: number[]): string {
  const tok = s.engine.tokenizer;
  return tok.decode([...prompt, ...generated]).slice(tok.decode(prompt).length);
}

describe("POST /v1/completions (stories260K, real engine)", () => {
  let s: LiveServer;
  before(async () => {
    s = await startServer();
  });
  after(() => s.close());

  it("greedy completions reproduce the golden tokens, with usage and finish_reason length", async () => {
    for (const c of golden.cases.slice(1)) {
      const r = await s.client.completions.create({
        model: "stories260K",
        prompt: c.prompt_token_ids,
        max_tokens: c.generated_token_ids.length,
        temperature: 0,
      });
      assert.equal(r.object, "text_completion");
      assert.equal(r.choices.length, 1);
      assert.equal(r.choices[0]!.text, continuation(s, c.prompt_token_ids, c.generated_token_ids), c.prompt);
      assert.equal(r.choices[0]!.finish_reason, "length");
      assert.deepEqual(r.usage, {
        prompt_tokens: c.prompt_token_ids.length,
        completion_tokens: c.generated_token_ids.length,
        total_tokens: c.prompt_token_ids.length + c.generated_token_ids.length,
        // Shorter than a block of 64: nothing to take from the prefix cache.
        prompt_tokens_details: { cached_tokens: 0 },
      });
    }
  });

  it("a text prompt is tokenized like the golden ids", async () => {
    const c = golden.cases[1]!;
    const r = await s.client.completions.create({
      model: "stories260K",
      prompt: c.prompt,
      max_tokens: 20,
      temperature: 0,
    });
    assert.equal(r.usage?.prompt_tokens, c.prompt_token_ids.length);
    assert.equal(r.choices[0]!.text, continuation(s, c.prompt_token_ids, c.generated_token_ids.slice(0, 20)));
  });

  it("streams the same text, ends with usage when asked, and [DONE]", async () => {
    const c = golden.cases[1]!;
    const stream = await s.client.completions.create({
      model: "stories260K",
      prompt: c.prompt_token_ids,
      max_tokens: 40,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish: string | null = null;
    let usage = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      if (chunk.usage) usage = chunk.usage;
      for (const ch of chunk.choices) {
        text += ch.text;
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    assert.ok(chunks > 10, `expected token-by-token chunks, got ${chunks}`);
    assert.equal(text, continuation(s, c.prompt_token_ids, c.generated_token_ids.slice(0, 40)));
    assert.equal(finish, "length");
    assert.deepEqual(usage, {
      prompt_tokens: 5,
      completion_tokens: 40,
      total_tokens: 45,
      prompt_tokens_details: { cached_tokens: 0 },
    });
  });

  it("the raw stream is SSE ending in data: [DONE]", async () => {
    const res = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "stories260K", prompt: "The dog", max_tokens: 3, stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const body = await res.text();
    assert.ok(body.endsWith("data: [DONE]\n\n"), body.slice(-80));
    for (const event of body.trim().split("\n\n")) assert.match(event, /^data: /);
  });

  it("stops at a stop string, excluding it, with finish_reason stop", async () => {
    const c = golden.cases[1]!;
    const full = continuation(s, c.prompt_token_ids, c.generated_token_ids);
    // The golden continuation is ", there was a little girl named Lily. She loved ...".
    const cut = full.indexOf(" girl");
    assert.ok(cut > 0);
    for (const stream of [false, true]) {
      const params = {
        model: "stories260K",
        prompt: c.prompt_token_ids,
        max_tokens: 60,
        temperature: 0,
        stop: [" girl", "zzz"],
      };
      let text = "";
      let finish: string | null = null;
      if (stream) {
        for await (const chunk of await s.client.completions.create({ ...params, stream: true })) {
          for (const ch of chunk.choices) {
            text += ch.text;
            finish = ch.finish_reason ?? finish;
          }
        }
      } else {
        const r = await s.client.completions.create(params);
        text = r.choices[0]!.text;
        finish = r.choices[0]!.finish_reason;
      }
      assert.equal(text, full.slice(0, cut), `stream=${stream}`);
      assert.equal(finish, "stop");
    }
  });

  it("the same seed reproduces a sampled completion; another seed differs", async () => {
    const ask = (seed: number) =>
      s.client.completions.create({
        model: "stories260K",
        prompt: "Once upon a time",
        max_tokens: 40,
        temperature: 1,
        seed,
      });
    const [a, b, c] = await Promise.all([ask(7), ask(7), ask(8)]);
    assert.equal(a.choices[0]!.text, b.choices[0]!.text);
    assert.notEqual(a.choices[0]!.text, c.choices[0]!.text);
  });

  it("n choices each get their own reproducible sample; usage counts them all", async () => {
    const ask = () =>
      s.client.completions.create({
        model: "stories260K",
        prompt: "Lily and Tom",
        max_tokens: 30,
        temperature: 1,
        seed: 3,
        n: 3,
      });
    const [a, b] = await Promise.all([ask(), ask()]);
    assert.deepEqual(
      a.choices.map((c) => c.index),
      [0, 1, 2],
    );
    assert.deepEqual(
      a.choices.map((c) => c.text),
      b.choices.map((c) => c.text),
    );
    assert.equal(new Set(a.choices.map((c) => c.text)).size, 3);
    assert.equal(a.usage?.completion_tokens, 90);
    assert.equal(a.usage?.prompt_tokens, 5);
  });

  it("logprobs: the chosen token's logprob and that many alternatives, greedy choice on top", async () => {
    const r = await s.client.completions.create({
      model: "stories260K",
      prompt: "Once upon a time",
      max_tokens: 8,
      temperature: 0,
      logprobs: 3,
    });
    const lp = r.choices[0]!.logprobs!;
    assert.equal(lp.tokens!.length, 8);
    assert.equal(lp.tokens!.join(""), r.choices[0]!.text);
    assert.equal(lp.token_logprobs!.length, 8);
    for (let i = 0; i < 8; i++) {
      const top = lp.top_logprobs![i]!;
      assert.ok(Object.keys(top).length >= 1 && Object.keys(top).length <= 3);
      const best = Math.max(...Object.values(top));
      assert.ok(Math.abs(best - lp.token_logprobs![i]!) < 1e-9, "greedy picks the most likely token");
      assert.ok(lp.token_logprobs![i]! <= 0);
    }
    assert.deepEqual(lp.text_offset!.slice(0, 2), [0, lp.tokens![0]!.length]);
  });

  it("several prompts in one request give one choice each, in order", async () => {
    const prompts = golden.cases.slice(1, 3);
    const r = await s.client.completions.create({
      model: "stories260K",
      prompt: prompts.map((c) => c.prompt_token_ids),
      max_tokens: 10,
      temperature: 0,
    });
    assert.equal(r.choices.length, 2);
    for (let i = 0; i < 2; i++) {
      assert.equal(r.choices[i]!.index, i);
      assert.equal(
        r.choices[i]!.text,
        continuation(s, prompts[i]!.prompt_token_ids, prompts[i]!.generated_token_ids.slice(0, 10)),
      );
    }
  });

  it("GET /v1/models lists the served model with its context length", async () => {
    const list = await s.client.models.list();
    assert.equal(list.data.length, 1);
    assert.equal(list.data[0]!.id, "stories260K");
    assert.equal((list.data[0] as unknown as { max_model_len: number }).max_model_len, 512);
  });

  it("POST /tokenize and /detokenize use the served tokenizer", async () => {
    const post = async (route: string, body: unknown) =>
      (await fetch(`${s.url}${route}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then((r) => r.json())) as { tokens: number[]; count: number; prompt: string };
    const c = golden.cases[1]!;
    const t = await post("/tokenize", { prompt: c.prompt });
    assert.deepEqual(t.tokens, c.prompt_token_ids);
    assert.equal(t.count, c.prompt_token_ids.length);
    const bare = await post("/tokenize", { prompt: c.prompt, add_special_tokens: false });
    assert.deepEqual(bare.tokens, c.prompt_token_ids.slice(1));
    assert.equal((await post("/detokenize", { tokens: c.prompt_token_ids })).prompt, c.prompt);
  });

  it("GET /health is 200 once the engine is ready", async () => {
    const res = await fetch(`${s.url}/health`);
    assert.equal(res.status, 200);
  });
});
