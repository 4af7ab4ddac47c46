// Seeded n > 1: every choice draws its own stream, derived from (seed, choice index) by a hash,
// so choice k of seed s is not choice 0 of seed s + k (as with seed + k), requests with nearby
// seeds share no samples, and the same request still gives the same n choices.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Sampler } from "../../src/engine/sampler.js";
import { Sequence } from "../../src/engine/sequence.js";
import { toSamplingParams } from "../../src/server/sampling.js";
import { type LiveServer, startServer, storiesModelPath } from "./helpers.js";

/** A small known distribution: softmax of these logits at temperature 1. */
const LOGITS = [1.0, 3.0, 2.0, 0.5, 2.9];
const V = LOGITS.length;
const P = (() => {
  const e = LOGITS.map(Math.exp);
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
})();

/**
 * The first token of choice `choice` of a request seeded `seed`, exactly as the server would
 * sample it: its parameters from toSamplingParams, its RNG from the engine's Sequence.
 */
const sampler = new Sampler(V);
const row = new Float32Array(V);
function firstToken(seed: number, choice: number): number {
  const params = toSamplingParams(
    { temperature: 1, seed, stop: [] },
    { requested: 1, fallback: null, param: "max_tokens", promptParam: "prompt" },
    1,
    64,
    null,
    choice,
    V,
  );
  const seq = new Sequence(0, "r", [0], params);
  row.set(LOGITS);
  return sampler.sample(row, 0, seq);
}

/** |observed − expected| in standard deviations of a binomial proportion over n draws. */
function sigmas(observed: number, p: number, n: number): number {
  return Math.abs(observed - p) / Math.sqrt((p * (1 - p)) / n);
}

describe("seeded choices (the server's seeds through the engine's sampler)", () => {
  it("choice k of seed s is not seeded like choice 0 of seed s + k", () => {
    const seedOf = (seed: number, choice: number) =>
      toSamplingParams(
        { seed, stop: [] },
        { requested: 1, fallback: null, param: "max_tokens", promptParam: "prompt" },
        1,
        64,
        null,
        choice,
        V,
      ).seed;
    for (let s = 0; s < 200; s++) {
      for (let k = 1; k < 16; k++) assert.notEqual(seedOf(s, k), seedOf(s + k, 0), `seed ${s}, choice ${k}`);
      // Reproducible, and choice 0 is the request's own seed (n = 1 requests sample as before).
      assert.equal(seedOf(s, 3), seedOf(s, 3));
      assert.equal(seedOf(s, 0), s);
    }
  });

  it("choice k of seed s and choice 0 of seed s + k agree only as often as independent draws", () => {
    // Two independent draws agree with probability Σ p²; streams shared by (s, k) and (s + k, 0)
    // would agree every time.
    const same = P.reduce((a, p) => a + p * p, 0);
    const N = 4000;
    for (const k of [1, 2, 15]) {
      let agree = 0;
      for (let s = 0; s < N; s++) if (firstToken(s, k) === firstToken(s + k, 0)) agree++;
      assert.ok(sigmas(agree / N, same, N) < 4, `k=${k}: agreement ${agree / N}, independent ${same}`);
    }
  });

  it("n = 16 choices of consecutive seeds sample the known distribution", () => {
    // 1500 requests (seeds 0..1499) of n = 16: 24000 draws. Were the streams of nearby seeds
    // shared, only ~1500 of them would be distinct, each counted up to 16 times, and the
    // frequencies would stray about four times as far as independent draws do.
    const R = 1500;
    const n = 16;
    const counts = new Array<number>(V).fill(0);
    for (let s = 0; s < R; s++) for (let k = 0; k < n; k++) counts[firstToken(s, k)]!++;
    const N = R * n;
    let chi2 = 0;
    for (let t = 0; t < V; t++) {
      assert.ok(sigmas(counts[t]! / N, P[t]!, N) < 4, `token ${t}: ${counts[t]! / N} vs ${P[t]}`);
      chi2 += (counts[t]! - N * P[t]!) ** 2 / (N * P[t]!);
    }
    // χ² with 4 degrees of freedom: above 18.5 one time in a thousand.
    assert.ok(chi2 < 18.5, `χ² = ${chi2.toFixed(1)}`);
  });

  it("the many choices of one seed sample the known distribution", () => {
    for (const seed of [0, 7, 123456789, -5, 2 ** 40 + 3]) {
      const N = 6000;
      const counts = new Array<number>(V).fill(0);
      for (let k = 0; k < N; k++) counts[firstToken(seed, k)]!++;
      for (let t = 0; t < V; t++)
        assert.ok(
          sigmas(counts[t]! / N, P[t]!, N) < 4,
          `seed ${seed}, token ${t}: ${counts[t]! / N} vs ${P[t]}`,
        );
    }
  });
});

describe("seeded n > 1 through the server (stories260K, real engine)", { timeout: 120_000 }, () => {
  let s: LiveServer;
  before(async () => {
    s = await startServer({ model: storiesModelPath(), attentionWorkers: 0 });
  });
  after(() => s.close());

  const complete = (seed: number, n: number) =>
    s.client.completions.create({
      model: "stories260K",
      prompt: "Once upon a time",
      // Long and hot enough that two independent streams practically never write the same text.
      max_tokens: 24,
      temperature: 1.5,
      seed,
      n,
    });

  it("choice 1 of seed s differs from choice 0 of seed s + 1", async () => {
    for (const seed of [1, 2, 3, 10, 100]) {
      const [a, b] = await Promise.all([complete(seed, 2), complete(seed + 1, 1)]);
      assert.notEqual(a.choices[1]!.text, b.choices[0]!.text, `seed ${seed}`);
    }
  });

  it("the same request gives the same n choices; choice 0 is the n = 1 sample", async () => {
    const [a, b, one] = await Promise.all([complete(42, 6), complete(42, 6), complete(42, 1)]);
    const texts = (r: typeof a) => r.choices.map((c) => c.text);
    assert.deepEqual(texts(a), texts(b));
    assert.equal(new Set(texts(a)).size, 6);
    assert.equal(a.choices[0]!.text, one.choices[0]!.text);
  });

  it("chat: seeded choices are reproducible and not those of the next seed", async () => {
    const chat = (seed: number, n: number) =>
      s.client.chat.completions.create({
        model: "stories260K",
        messages: [{ role: "user", content: "Tell me a story" }],
        max_tokens: 24,
        temperature: 1.5,
        seed,
        n,
      });
    const [a, b, next] = await Promise.all([chat(5, 3), chat(5, 3), chat(6, 1)]);
    const texts = (r: typeof a) => r.choices.map((c) => c.message.content);
    assert.deepEqual(texts(a), texts(b));
    assert.notEqual(a.choices[1]!.message.content, next.choices[0]!.message.content);
  });
});
