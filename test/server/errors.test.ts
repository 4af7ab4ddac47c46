import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import type { EngineClient } from "../../src/engine/api.js";
import { createServer } from "../../src/server/app.js";
import { type LiveServer, postRaw, startServer, storiesModelPath, waitFor } from "./helpers.js";

/** OpenAI's error type for each status this server answers with. */
const TYPE_OF_STATUS: Record<number, string> = {
  400: "invalid_request_error",
  401: "invalid_request_error",
  404: "invalid_request_error",
  413: "invalid_request_error",
  415: "invalid_request_error",
  429: "rate_limit_error",
  500: "server_error",
  503: "service_unavailable",
};

/** Asserts the OpenAI error shape (the type its status calls for) and returns the error object. */
function expectError(
  r: {
    status: number;
    json: { error?: { message: string; type: string; param: string | null; code: string | null } };
  },
  status: number,
  param?: string | null,
) {
  assert.equal(r.status, status, JSON.stringify(r.json));
  const e = r.json.error;
  assert.ok(e, "body has an error object");
  assert.equal(typeof e.message, "string");
  assert.ok(e.message.length > 0);
  assert.equal(e.type, TYPE_OF_STATUS[status], `error type for ${status}`);
  assert.ok("param" in e && "code" in e);
  // The parameter, or a path inside it ("prompt[1]", "messages[0].role").
  if (param !== undefined) {
    const ok =
      e.param === param ||
      (param !== null && /^[[.]/.test(e.param?.slice(param.length) ?? "") && e.param!.startsWith(param));
    assert.ok(ok, `param ${e.param} should name ${param}: ${e.message}`);
  }
  return e;
}

describe("errors in OpenAI's shape (stories260K, real engine)", () => {
  let s: LiveServer;
  let completions: string;
  let chat: string;
  before(async () => {
    s = await startServer();
    completions = `${s.url}/v1/completions`;
    chat = `${s.url}/v1/chat/completions`;
  });
  after(() => s.close());

  const body = (extra: Record<string, unknown>) =>
    JSON.stringify({ model: "stories260K", prompt: "Once", ...extra });

  it("400 naming the parameter for out-of-range and wrongly typed values", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ temperature: -1 }, "temperature"],
      [{ temperature: "hot" }, "temperature"],
      [{ top_p: 0 }, "top_p"],
      [{ max_tokens: -5 }, "max_tokens"],
      [{ max_tokens: 1.5 }, "max_tokens"],
      [{ max_tokens: 1e300 }, "max_tokens"],
      [{ n: 0 }, "n"],
      [{ n: 1000 }, "n"],
      [{ logprobs: 99 }, "logprobs"],
      [{ seed: "x" }, "seed"],
      [{ stop: 3 }, "stop"],
      [{ frequency_penalty: 5 }, "frequency_penalty"],
      [{ prompt: 42 }, "prompt"],
      [{ prompt: [1, -2] }, "prompt"],
      [{ prompt: [1, 99999] }, "prompt"],
      [{ stream: "yes" }, "stream"],
      [{ stream_options: { include_usage: true } }, "stream_options"],
    ];
    for (const [extra, param] of cases) {
      expectError(await postRaw(completions, body(extra)), 400, param);
    }
    expectError(await postRaw(chat, JSON.stringify({ model: "stories260K", messages: [] })), 400, "messages");
    expectError(
      await postRaw(
        chat,
        JSON.stringify({ model: "stories260K", messages: [{ role: "wizard", content: "hi" }] }),
      ),
      400,
      "messages[0].role",
    );
    expectError(
      await postRaw(
        chat,
        JSON.stringify({ model: "stories260K", messages: [{ role: "user", content: "x" }], top_logprobs: 2 }),
      ),
      400,
      "top_logprobs",
    );
  });

  it("400 for malformed JSON, a non-object body, an empty body and invalid UTF-8", async () => {
    const bad = expectError(await postRaw(completions, '{"model": "stories260K", "prompt": '), 400);
    assert.equal(bad.code, "invalid_json");
    expectError(await postRaw(completions, "[1, 2, 3]"), 400);
    expectError(await postRaw(completions, "null"), 400);
    expectError(await postRaw(completions, ""), 400);
    const bytes = Buffer.concat([
      Buffer.from('{"model": "stories260K", "prompt": "'),
      Buffer.from([0xff, 0xfe, 0xc3]),
      Buffer.from('"}'),
    ]);
    const utf8 = expectError(await postRaw(completions, bytes), 400);
    assert.equal(utf8.code, "invalid_encoding");
  });

  it("413 for an oversized body and 415 for a non-JSON content type, in the same error shape", async () => {
    const huge = JSON.stringify({ model: "stories260K", prompt: "x".repeat(9 * 1024 * 1024) });
    expectError(await postRaw(completions, huge), 413);
    expectError(await postRaw(completions, "prompt=x", { "content-type": "text/plain" }), 415);
  });

  it("400 context_length_exceeded for a prompt longer than the context, and for max_tokens beyond it", async () => {
    const long = new Array(600).fill(300);
    const e = expectError(await postRaw(completions, body({ prompt: long })), 400, "prompt");
    assert.equal(e.code, "context_length_exceeded");
    const m = expectError(
      await postRaw(completions, body({ prompt: [1, 403], max_tokens: 511 })),
      400,
      "max_tokens",
    );
    assert.equal(m.code, "context_length_exceeded");
    // Exactly filling the context is allowed.
    const ok = await s.client.completions.create({
      model: "stories260K",
      prompt: [1, 403],
      max_tokens: 510,
      ignore_eos: true,
    } as never);
    assert.equal((ok as unknown as { usage: { completion_tokens: number } }).usage.completion_tokens, 510);
    await assert.rejects(
      s.client.chat.completions.create({
        model: "stories260K",
        messages: [{ role: "user", content: "word ".repeat(600) }],
      }),
      (err: unknown) => err instanceof OpenAI.BadRequestError && err.code === "context_length_exceeded",
    );
    const longChat = JSON.stringify({
      model: "stories260K",
      messages: [{ role: "user", content: "word ".repeat(600) }],
      max_tokens: 5,
    });
    expectError(await postRaw(chat, longChat), 400, "messages");
  });

  it("404 model_not_found for an unknown model, through the OpenAI client", async () => {
    await assert.rejects(
      s.client.completions.create({ model: "gpt-17", prompt: "x" }),
      (err: unknown) =>
        err instanceof OpenAI.NotFoundError && err.code === "model_not_found" && err.param === "model",
    );
    expectError(await postRaw(`${s.url}/v1/nowhere`, "{}"), 404);
  });

  it("the server still serves after every bad request", async () => {
    const r = await s.client.completions.create({ model: "stories260K", prompt: "The dog", max_tokens: 4 });
    assert.equal(r.usage?.completion_tokens, 4);
  });
});

describe("401 with an API key", () => {
  let s: LiveServer;
  before(async () => {
    s = await startServer({ model: storiesModelPath() }, { apiKey: "sekrit" });
  });
  after(() => s.close());

  it("rejects a missing or wrong key and accepts the right one; /health needs none", async () => {
    const url = `${s.url}/v1/completions`;
    const req = JSON.stringify({ model: "stories260K", prompt: "Once", max_tokens: 2 });
    expectError(await postRaw(url, req), 401);
    const wrong = expectError(await postRaw(url, req, { authorization: "Bearer nope" }), 401);
    assert.equal(wrong.code, "invalid_api_key");
    await assert.rejects(
      new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "nope", maxRetries: 0 }).models.list(),
      (err: unknown) => err instanceof OpenAI.AuthenticationError,
    );
    const r = await s.client.completions.create({ model: "stories260K", prompt: "Once", max_tokens: 2 });
    assert.equal(r.choices.length, 1);
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
  });
});

describe("503 while the engine is not ready", () => {
  it("answers /health and the API with 503 until the engine promise resolves, then serves", async () => {
    let resolve!: (e: EngineClient) => void;
    const pending = new Promise<EngineClient>((r) => {
      resolve = r;
    });
    const app = createServer(pending);
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address() as { port: number };
    const url = `http://127.0.0.1:${address.port}`;
    try {
      assert.equal((await fetch(`${url}/health`)).status, 503);
      expectError(
        await postRaw(`${url}/v1/completions`, JSON.stringify({ model: "stories260K", prompt: "x" })),
        503,
      );
      const models = await fetch(`${url}/v1/models`);
      assert.equal(models.status, 503);
      const { createEngine } = await import("../../src/placement/create-engine.js");
      const engine = await createEngine({ model: storiesModelPath() });
      resolve(engine);
      await new Promise((r) => setImmediate(r));
      assert.equal((await fetch(`${url}/health`)).status, 200);
      await engine.shutdown({ force: true });
    } finally {
      await app.close();
    }
  });

  it("reports a failed engine load on /health as 503 with the reason", async () => {
    const app = createServer(Promise.reject(new Error("weights are missing")));
    await app.listen({ host: "127.0.0.1", port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    try {
      const res = await fetch(`${url}/health`);
      assert.equal(res.status, 503);
      assert.match(await res.text(), /weights are missing/);
    } finally {
      await app.close();
    }
  });
});

describe("429 when the waiting queue is full", () => {
  let s: LiveServer;
  before(async () => {
    s = await startServer({ model: storiesModelPath(), maxRunning: 1, maxWaiting: 1 });
  });
  after(() => s.close());

  /**
   * One request runs (the engine takes one step, then holds), then five more arrive at once: one
   * fits the waiting queue and four are refused. The hold, not the clock, orders it.
   */
  async function overfill(stream: boolean): Promise<{ status: number; text: string }[]> {
    const refusedBefore = s.engine.stats().refused;
    const send = () =>
      fetch(`${s.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "stories260K",
          prompt: "Once",
          max_tokens: 200,
          ignore_eos: true,
          stream,
        }),
      }).then(async (r) => ({ status: r.status, text: await r.text() }));
    s.engine.hold(1);
    const first = send();
    assert.ok(await waitFor(() => s.engine.stats().running === 1), "the first request is running");
    const rest = Array.from({ length: 5 }, send);
    assert.ok(await waitFor(() => s.engine.stats().refused === refusedBefore + 4), "four refused");
    s.engine.release();
    return Promise.all([first, ...rest]);
  }

  it("refuses requests beyond running + waiting with 429 rate_limit_error; the admitted ones finish", async () => {
    const results = await overfill(false);
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 200, 429, 429, 429, 429]);
    for (const r of results.filter((x) => x.status === 429)) {
      const e = JSON.parse(r.text).error;
      assert.equal(e.type, "rate_limit_error");
      assert.equal(e.code, "queue_full");
    }
    for (const r of results.filter((x) => x.status === 200))
      assert.equal(JSON.parse(r.text).usage.completion_tokens, 200);
  });

  it("streaming requests are refused before any byte of the stream is sent", async () => {
    const results = await overfill(true);
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 200, 429, 429, 429, 429]);
    for (const r of results.filter((x) => x.status === 429)) assert.doesNotMatch(r.text, /^data:/);
    for (const r of results.filter((x) => x.status === 200)) assert.ok(r.text.endsWith("data: [DONE]\n\n"));
  });
});

describe("/health tells the truth about attention capacity", () => {
  it("is 503 with the engine's reason while it cannot serve, and 200 once it can again", async () => {
    const s = await startServer({ model: storiesModelPath(), attentionWorkers: 0 });
    try {
      const real = s.engine.stats.bind(s.engine);
      let readiness: { ready: boolean; reason?: string } = {
        ready: false,
        reason: "attention unavailable: no attention capacity after 3 recovery attempt(s): w0 refused",
      };
      // The engine's own readiness (set by recovery; see the recovery fault tests), as /health reads it.
      s.engine.stats = () => ({ ...real(), readiness });
      const down = await fetch(`${s.url}/health`);
      assert.equal(down.status, 503);
      assert.deepEqual(await down.json(), { status: "unavailable", reason: readiness.reason });
      readiness = { ready: true };
      const up = await fetch(`${s.url}/health`);
      assert.equal(up.status, 200);
    } finally {
      await s.close();
    }
  });
});

describe("failures that are the server's state", () => {
  it("answer 503 attention_unavailable with the reason; other engine failures stay 500", async () => {
    const s = await startServer({ model: storiesModelPath(), attentionWorkers: 0 });
    try {
      const fail = (unavailable: boolean) => {
        s.engine.generate = async function* (request) {
          yield {
            requestId: request.id,
            tokenIds: [],
            text: "",
            finished: true,
            finishReason: "error",
            error: "attention unavailable: no attention capacity after 4 recovery attempt(s): w0 refused",
            ...(unavailable ? { unavailable } : {}),
            promptTokens: request.promptTokenIds.length,
            completionTokens: 0,
          };
        };
      };
      const body = JSON.stringify({ model: "stories260K", prompt: "Once", max_tokens: 4 });
      fail(true);
      const r = await postRaw(`${s.url}/v1/completions`, body);
      expectError(r, 503);
      assert.equal(r.json.error?.code, "attention_unavailable");
      assert.match(r.json.error?.message ?? "", /no attention capacity/);
      fail(false);
      expectError(await postRaw(`${s.url}/v1/completions`, body), 500);
    } finally {
      await s.close();
    }
  });
});
