import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { kvUsed, type LiveServer, postRaw, startServer, storiesModelPath, waitFor } from "./helpers.js";

const engineOptions = () => ({ model: storiesModelPath(), attentionWorkers: 0 });

describe("API details (stories260K, real engine)", () => {
  let s: LiveServer;
  before(async () => {
    s = await startServer(engineOptions());
  });
  after(() => s.close());

  it("GET /v1/models/{id} returns the model object GET /v1/models lists (openai models.retrieve)", async () => {
    const listed = await s.client.models.list();
    assert.equal(listed.data.length, 1);
    const model = await s.client.models.retrieve("stories260K");
    assert.deepEqual(model, listed.data[0]);
    assert.equal(model.id, "stories260K");
    assert.equal(model.object, "model");
    assert.equal(model.owned_by, "lamina");
    assert.equal(typeof model.created, "number");
  });

  it("GET /v1/models/{id} of an unknown model is 404 model_not_found in OpenAI's error shape", async () => {
    await assert.rejects(
      s.client.models.retrieve("gpt-17"),
      (err: unknown) =>
        err instanceof OpenAI.NotFoundError && err.code === "model_not_found" && err.param === "model",
    );
    for (const id of ["gpt-17", "org%2Fname", "org/name"]) {
      const res = await fetch(`${s.url}/v1/models/${id}`);
      assert.equal(res.status, 404, id);
      const { error } = (await res.json()) as { error: Record<string, unknown> };
      assert.equal(error.type, "invalid_request_error");
      assert.equal(error.code, "model_not_found");
      assert.equal(error.param, "model");
      assert.match(String(error.message), /gpt-17|org\/name/);
    }
  });

  it("counts 404s of unknown routes in lamina_http_errors_total", async () => {
    const count404 = async () => {
      const text = await (await fetch(`${s.url}/metrics`)).text();
      const m = /^lamina_http_errors_total\{status="404"\} (\d+)$/m.exec(text);
      return m ? Number(m[1]) : 0;
    };
    const before = await count404();
    assert.equal((await fetch(`${s.url}/v1/nowhere`)).status, 404);
    assert.equal((await postRaw(`${s.url}/nowhere`, "{}")).status, 404);
    // A route's own 404 (unknown model) is counted too, once.
    assert.equal((await fetch(`${s.url}/v1/models/gpt-17`)).status, 404);
    assert.equal(await count404(), before + 3);
  });

  it("n = 16 sets off no MaxListenersExceededWarning, and aborting still frees every choice", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const r = await s.client.completions.create({
        model: "stories260K",
        prompt: "Once upon a time",
        n: 16,
        max_tokens: 4,
      });
      assert.equal(r.choices.length, 16);
      // Two prompts × n = 16: 32 choices behind one HTTP request, aborted by the client midway.
      const ac = new AbortController();
      const res = await fetch(`${s.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "stories260K",
          prompt: ["Once", "The dog"],
          n: 16,
          max_tokens: 400,
          ignore_eos: true,
          stream: true,
        }),
        signal: ac.signal,
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      await reader.read();
      ac.abort();
      await reader.cancel().catch(() => {});
      assert.ok(await waitFor(() => kvUsed(s.engine) === 0), "every choice's KV is freed");
      // process.emitWarning delivers on the next tick: one macrotask turn is after all of them.
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off("warning", onWarning);
    }
    const leaks = warnings.filter((w) => w.name === "MaxListenersExceededWarning");
    assert.deepEqual(
      leaks.map((w) => w.message),
      [],
    );
  });

  it("a request without `model` is served by the one model, and names it; a wrong name is still a 404", async () => {
    const post = async (path: string, body: Record<string, unknown>) => {
      const res = await fetch(`${s.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };
    const chat = await post("/v1/chat/completions", {
      messages: [{ role: "user", content: "Once upon a time" }],
      max_tokens: 4,
    });
    assert.equal(chat.status, 200, JSON.stringify(chat.json));
    assert.equal(chat.json.model, "stories260K");
    assert.equal((chat.json.choices as unknown[]).length, 1);
    const completion = await post("/v1/completions", { prompt: "Once", max_tokens: 2 });
    assert.equal(completion.status, 200, JSON.stringify(completion.json));
    assert.equal(completion.json.model, "stories260K");
    const wrong = await post("/v1/completions", { model: "gpt-17", prompt: "Once", max_tokens: 2 });
    assert.equal(wrong.status, 404);
    assert.equal((wrong.json.error as { code: string }).code, "model_not_found");
  });

  it("400s for union-typed fields name the parameter and the forms it accepts", async () => {
    const completions = `${s.url}/v1/completions`;
    const chat = `${s.url}/v1/chat/completions`;
    const cases: [string, Record<string, unknown>, string, RegExp][] = [
      [
        completions,
        { model: "stories260K", prompt: 5 },
        "prompt",
        /^prompt must be a string, an array of strings, an array of token ids or an array of arrays of token ids/,
      ],
      [completions, { model: "stories260K", prompt: [1, "a"] }, "prompt", /^prompt must be a string/],
      [
        completions,
        { model: "stories260K", prompt: "Once", stop: 5 },
        "stop",
        /^stop must be a non-empty string or an array of at most 16 non-empty strings$/,
      ],
      [
        completions,
        { model: "stories260K", prompt: "Once", stop: Array(17).fill("x") },
        "stop",
        /^stop must be .*at most 16/,
      ],
      [
        chat,
        { model: "stories260K", messages: [{ role: "user", content: 5 }] },
        "messages[0].content",
        /^messages\[0\]\.content must be a string, a non-empty array of text parts .* or null$/,
      ],
      [
        chat,
        { model: "stories260K", messages: [{ role: "user", content: [{ type: "image_url" }] }] },
        "messages[0].content",
        /^messages\[0\]\.content must be a string/,
      ],
    ];
    for (const [url, body, param, message] of cases) {
      const r = await postRaw(url, JSON.stringify(body));
      assert.equal(r.status, 400, JSON.stringify(r.json));
      assert.equal(r.json.error?.type, "invalid_request_error");
      assert.equal(r.json.error?.param, param);
      assert.match(r.json.error?.message ?? "", message);
    }
    // A value of the right form that breaks a bound inside it is still named precisely.
    const inner = await postRaw(completions, JSON.stringify({ model: "stories260K", prompt: [1, -2] }));
    assert.equal(inner.status, 400);
    assert.equal(inner.json.error?.param, "prompt[1]");
  });
});

describe("the Authorization scheme is case-insensitive (RFC 7235)", () => {
  let s: LiveServer;
  before(async () => {
    s = await startServer(engineOptions(), { apiKey: "sekrit" });
  });
  after(() => s.close());

  const status = async (authorization: string) =>
    (await fetch(`${s.url}/v1/models`, { headers: { authorization } })).status;

  it("accepts bearer in any case with the right key", async () => {
    for (const scheme of ["Bearer", "bearer", "BEARER", "bEaReR"])
      assert.equal(await status(`${scheme} sekrit`), 200);
    const r = await postRaw(
      `${s.url}/v1/completions`,
      JSON.stringify({ model: "stories260K", prompt: "Once", max_tokens: 2 }),
      { authorization: "bearer sekrit" },
    );
    assert.equal(r.status, 200, JSON.stringify(r.json));
  });

  it("still rejects a wrong key, another scheme and a bare key", async () => {
    for (const header of [
      "bearer nope",
      "Bearer sekrit2",
      "Basic sekrit",
      "Token sekrit",
      "sekrit",
      "bearersekrit",
    ])
      assert.equal(await status(header), 401, header);
  });
});
