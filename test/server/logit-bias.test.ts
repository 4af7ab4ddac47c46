// logit_bias as OpenAI specifies it, on both endpoints: a map from token id (a decimal string) to
// a bias in [-100, 100] added to that token's logit before sampling (greedy included); anything
// else is a 400 naming logit_bias.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { TokenTexts } from "../../src/server/logprobs.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { spawnGroup } from "../helpers/processes.js";
import { type LiveServer, postRaw, startServer, storiesModelPath } from "./helpers.js";

interface GoldenCase {
  prompt: string;
  prompt_token_ids: number[];
  generated_token_ids: number[];
}
const golden = JSON.parse(
  readFileSync(path.join(sharedDataPath("models", "stories260K"), "golden_stories260K.json"), "utf8"),
) as { cases: GoldenCase[] };
const MODEL = "stories260K";
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../bin/lamina.js");

describe("logit_bias (stories260K, real engine)", { timeout: 120_000 }, () => {
  let s: LiveServer;
  before(async () => {
    s = await startServer({ model: storiesModelPath(), attentionWorkers: 0 });
  });
  after(() => s.close());

  /** The text generated tokens add after the prompt (decoding them alone would drop a leading space). */
  const continuation = (prompt: number[], generated: number[]): string => {
    const tok = s.engine.tokenizer;
    return tok.decode([...prompt, ...generated]).slice(tok.decode(prompt).length);
  };
  const c = golden.cases[1]!;
  const greedyFirst = c.generated_token_ids[0]!;
  /** A token greedy decoding would not pick first: one it picks later in the golden run. */
  const other = c.generated_token_ids.find((t) => t !== greedyFirst && t > 2)!;

  it("+100 forces a token at every greedy step", async () => {
    const r = await s.client.completions.create({
      model: MODEL,
      prompt: c.prompt_token_ids,
      max_tokens: 4,
      temperature: 0,
      logit_bias: { [String(other)]: 100 },
    });
    assert.equal(r.choices[0]!.text, continuation(c.prompt_token_ids, [other, other, other, other]));
  });

  it("-100 on the greedy choice changes the first token; logprobs stay those of the raw logits", async () => {
    const ask = (logit_bias?: Record<string, number>) =>
      s.client.completions.create({
        model: MODEL,
        prompt: c.prompt_token_ids,
        max_tokens: 1,
        temperature: 0,
        logprobs: 2,
        ...(logit_bias ? { logit_bias } : {}),
      });
    const plain = await ask();
    assert.equal(plain.choices[0]!.text, continuation(c.prompt_token_ids, [greedyFirst]));
    const banned = await ask({ [String(greedyFirst)]: -100 });
    assert.notEqual(banned.choices[0]!.text, plain.choices[0]!.text);
    // The runner-up of the unbiased distribution is what greedy picks now, with its raw logprob.
    const top = Object.entries(plain.choices[0]!.logprobs!.top_logprobs![0]!).sort((a, b) => b[1] - a[1]);
    assert.equal(banned.choices[0]!.logprobs!.tokens![0], top[1]![0]);
    assert.ok(Math.abs(banned.choices[0]!.logprobs!.token_logprobs![0]! - top[1]![1]) < 1e-6);
  });

  it("works on /v1/chat/completions too: forcing, and banning the greedy choice", async () => {
    const texts = new TokenTexts(s.engine.tokenizer);
    const messages = [{ role: "user" as const, content: "Tell me a story" }];
    const forced = await s.client.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: 3,
      temperature: 0,
      logprobs: true,
      logit_bias: { [String(other)]: 100 },
    });
    assert.deepEqual(
      forced.choices[0]!.logprobs!.content!.map((t) => t.token),
      [other, other, other].map((t) => texts.text(t)),
    );
    const ask = (logit_bias?: Record<string, number>) =>
      s.client.chat.completions.create({
        model: MODEL,
        messages,
        max_tokens: 1,
        temperature: 0,
        logprobs: true,
        top_logprobs: 2,
        ...(logit_bias ? { logit_bias } : {}),
      });
    const plain = (await ask()).choices[0]!.logprobs!.content![0]!;
    const [best, second] = plain.top_logprobs;
    assert.equal(plain.token, best!.token);
    // Every id that reads as the greedy token, banned.
    const ids = Array.from({ length: s.engine.model.vocabSize }, (_, id) => id).filter(
      (id) => texts.text(id) === best!.token,
    );
    assert.ok(ids.length >= 1);
    const banned = (await ask(Object.fromEntries(ids.map((id) => [String(id), -100])))).choices[0]!.logprobs!
      .content![0]!;
    assert.equal(banned.token, second!.token);
    assert.ok(Math.abs(banned.logprob - second!.logprob) < 1e-6, "logprobs are those of the raw logits");
  });

  it("`lamina generate --logit-bias ID=BIAS` (repeatable) samples what the server does", async () => {
    const served = await s.client.completions.create({
      model: MODEL,
      prompt: c.prompt_token_ids,
      max_tokens: 3,
      temperature: 0.7,
      seed: 9,
      logit_bias: { [String(greedyFirst)]: -100, [String(other)]: 5 },
    });
    const cli = spawnGroup(process.execPath, [
      CLI,
      "generate",
      "--model",
      storiesModelPath(),
      "--prompt",
      c.prompt,
      "--max-tokens",
      "3",
      "--temperature",
      "0.7",
      "--seed",
      "9",
      "--logit-bias",
      `${greedyFirst}=-100`,
      "--logit-bias",
      `${other}=5`,
      "--json",
    ]);
    try {
      const status = await cli.exited;
      assert.equal(status.code, 0, cli.output());
      const line = cli
        .output()
        .split("\n")
        .find((l) => l.startsWith("{"));
      assert.ok(line, cli.output());
      const generated = JSON.parse(line) as { prompt_token_ids: number[]; token_ids: number[]; text: string };
      assert.deepEqual(generated.prompt_token_ids, c.prompt_token_ids);
      assert.notEqual(generated.token_ids[0], greedyFirst);
      assert.equal(generated.text, served.choices[0]!.text);
    } finally {
      await cli.stop();
    }
  });

  it("400 naming logit_bias for every malformed value, on both endpoints", async () => {
    const vocab = s.engine.model.vocabSize;
    const tooMany = Object.fromEntries(Array.from({ length: 301 }, (_, i) => [String(i), 1]));
    const bad: unknown[] = [
      "x",
      5,
      [1, 2],
      { abc: 5 },
      { "-1": 5 },
      { "5": 1000 },
      { "5": -101 },
      { "99999": 5 },
      { [String(vocab)]: 5 },
      tooMany,
    ];
    const routes: [string, Record<string, unknown>][] = [
      ["/v1/completions", { model: MODEL, prompt: "Once", max_tokens: 1 }],
      ["/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 1 }],
    ];
    for (const [route, body] of routes) {
      for (const logit_bias of bad) {
        const r = await postRaw(`${s.url}${route}`, JSON.stringify({ ...body, logit_bias }));
        const what = `${route} logit_bias=${JSON.stringify(logit_bias).slice(0, 40)}`;
        assert.equal(r.status, 400, what);
        assert.equal(r.json.error?.param, "logit_bias", what);
        assert.equal(r.json.error?.type, "invalid_request_error", what);
      }
      // The edges are fine, and so are null and {}.
      for (const logit_bias of [{ [String(vocab - 1)]: -100, "0": 100 }, null, {}]) {
        const r = await postRaw(`${s.url}${route}`, JSON.stringify({ ...body, logit_bias }));
        assert.equal(r.status, 200, `${route} logit_bias=${JSON.stringify(logit_bias)}`);
      }
    }
  });
});
