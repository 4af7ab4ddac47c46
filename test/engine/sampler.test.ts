import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SamplingParams } from "../../src/engine/api.js";
import { InvalidRequestError } from "../../src/engine/errors.js";
import { Rng } from "../../src/engine/rng.js";
import { Sampler, type SamplingState } from "../../src/engine/sampler.js";
import {
  MAX_TEMPERATURE,
  resolveSamplingParams,
  type SamplingInput,
} from "../../src/engine/sampling-params.js";
import { StopChecker } from "../../src/engine/stop-checker.js";

function state(
  params: Partial<SamplingParams>,
  seed = 1,
  prompt: number[] = [],
  output: number[] = [],
): SamplingState {
  const counts = new Map<number, number>();
  for (const t of output) counts.set(t, (counts.get(t) ?? 0) + 1);
  return {
    params: resolveSamplingParams(params),
    rng: new Rng(seed),
    promptTokens: prompt,
    outputCounts: counts,
  };
}

const logits = () => Float32Array.from([1.0, 3.0, 2.0, 0.5, 2.9]);

describe("sampler", () => {
  const s = new Sampler(5);

  it("greedy picks the argmax", () => {
    assert.equal(s.sample(logits(), 0, state({ temperature: 0 })), 1);
  });

  it("reads a row at an offset", () => {
    const two = Float32Array.from([...logits(), 9, 0, 0, 0, 0]);
    assert.equal(s.sample(two, 5, state({ temperature: 0 })), 0);
  });

  it("top-k = 1 and tiny top-p reduce to greedy at any temperature (up to the bound, 2)", () => {
    for (let seed = 0; seed < 50; seed++) {
      assert.equal(s.sample(logits(), 0, state({ temperature: MAX_TEMPERATURE, topK: 1 }, seed)), 1);
      assert.equal(s.sample(logits(), 0, state({ temperature: MAX_TEMPERATURE, topP: 0.01 }, seed)), 1);
    }
  });

  it("min-p drops tokens much less likely than the best", () => {
    for (let seed = 0; seed < 200; seed++) {
      const t = s.sample(logits(), 0, state({ temperature: 1, minP: 0.5 }, seed));
      assert.ok(t === 1 || t === 4, `token ${t} should have been filtered`);
    }
  });

  it("draws with the softmax distribution", () => {
    const st = state({ temperature: 1 }, 42);
    const counts = new Array(5).fill(0);
    const N = 40000;
    for (let i = 0; i < N; i++) counts[s.sample(logits(), 0, st)]++;
    const l = [...logits()];
    const z = l.reduce((a, v) => a + Math.exp(v), 0);
    l.forEach((v, i) => {
      const p = Math.exp(v) / z;
      assert.ok(Math.abs(counts[i] / N - p) < 0.01, `token ${i}: ${counts[i] / N} vs ${p}`);
    });
  });

  it("top-p keeps the smallest nucleus reaching p", () => {
    // probs ≈ [0.05, 0.36, 0.13, 0.03, 0.33(+)]: top-p 0.6 keeps tokens 1 and 4 only.
    const seen = new Set<number>();
    for (let seed = 0; seed < 300; seed++)
      seen.add(s.sample(logits(), 0, state({ temperature: 1, topP: 0.6 }, seed)));
    assert.deepEqual([...seen].sort(), [1, 4]);
  });

  it("is reproducible for a seed", () => {
    const draw = (seed: number) =>
      Array.from(
        { length: 20 },
        (
          (st) => () =>
            s.sample(logits(), 0, st)
        )(state({ temperature: 1.5 }, seed)),
      );
    assert.deepEqual(draw(7), draw(7));
    assert.notDeepEqual(draw(7), draw(8));
  });

  it("repetition, frequency and presence penalties move the choice", () => {
    assert.equal(s.sample(logits(), 0, state({ temperature: 0, repetitionPenalty: 2 }, 1, [1])), 4);
    assert.equal(s.sample(logits(), 0, state({ temperature: 0, frequencyPenalty: 0.1 }, 1, [], [1, 1])), 4);
    assert.equal(s.sample(logits(), 0, state({ temperature: 0, presencePenalty: 0.2 }, 1, [], [1])), 4);
    assert.equal(s.sample(logits(), 0, state({ temperature: 0, presencePenalty: 0.05 }, 1, [], [1])), 1);
  });

  it("reports logprobs from the raw distribution with ordered alternatives", () => {
    const lp = s.logprobs(logits(), 0, 2, 3);
    const l = [...logits()];
    const lse = Math.log(l.reduce((a, v) => a + Math.exp(v), 0));
    assert.ok(Math.abs(lp.logprob - (2 - lse)) < 1e-6);
    assert.deepEqual(
      lp.top.map((t) => t.tokenId),
      [1, 4, 2],
    );
    assert.ok(Math.abs(lp.top[0]!.logprob - (3 - lse)) < 1e-6);
  });
});

describe("sampling parameters", () => {
  const bad: [Partial<SamplingParams>, string][] = [
    [{ temperature: -1 }, "temperature"],
    [{ temperature: Number.NaN }, "temperature"],
    [{ topP: 0 }, "top_p"],
    [{ topP: 1.5 }, "top_p"],
    [{ topK: -2 }, "top_k"],
    [{ topK: 1.5 }, "top_k"],
    [{ minP: 2 }, "min_p"],
    [{ repetitionPenalty: 0 }, "repetition_penalty"],
    [{ frequencyPenalty: 3 }, "frequency_penalty"],
    [{ presencePenalty: -3 }, "presence_penalty"],
    [{ maxTokens: 0 }, "max_tokens"],
    [{ seed: 1.5 }, "seed"],
    [{ stop: [""] }, "stop"],
    [{ logprobs: 50 }, "logprobs"],
    [{ stopTokenIds: [-1] }, "stop_token_ids"],
  ];
  for (const [p, param] of bad) {
    it(`rejects ${JSON.stringify(p)} naming ${param}`, () => {
      assert.throws(
        () => resolveSamplingParams(p),
        (e: unknown) => e instanceof InvalidRequestError && e.param === param,
      );
    });
  }

  it("takes defaults from generation_config", () => {
    const p = resolveSamplingParams({}, { temperature: 0.6, topP: 0.9, maxNewTokens: 33 });
    assert.equal(p.temperature, 0.6);
    assert.equal(p.topP, 0.9);
    assert.equal(p.maxTokens, 33);
  });
});

describe("stop strings", () => {
  it("holds back a possible stop prefix and cuts at the match", () => {
    const c = new StopChecker(["END"]);
    assert.deepEqual(c.push("hello E"), { emit: "hello ", stopped: false });
    assert.deepEqual(c.push("N"), { emit: "", stopped: false });
    assert.deepEqual(c.push("D and more"), { emit: "", stopped: true });
  });

  it("releases held text that turned out not to be a stop string", () => {
    const c = new StopChecker(["END"]);
    c.push("an E");
    assert.deepEqual(c.push("xit"), { emit: "Exit", stopped: false });
    assert.equal(c.flush(), "");
  });

  it("finds the earliest of several stops", () => {
    const c = new StopChecker(["bb", "a"]);
    assert.deepEqual(c.push("xxbbya"), { emit: "xx", stopped: true });
  });
});

describe("logit_bias", () => {
  const s = new Sampler(5);
  /** state(), taking logit_bias as OpenAI's map too. */
  const state = (params: SamplingInput, seed = 1): SamplingState => ({
    params: resolveSamplingParams(params),
    rng: new Rng(seed),
    promptTokens: [],
    outputCounts: new Map(),
  });
  // logits() = [1.0, 3.0, 2.0, 0.5, 2.9]: greedy picks 1, then 4.

  it("is added before greedy's argmax: +100 forces a token, -100 bans the best one", () => {
    assert.equal(s.sample(logits(), 0, state({ temperature: 0, logitBias: { "3": 100 } })), 3);
    assert.equal(s.sample(logits(), 0, state({ temperature: 0, logitBias: { "1": -100 } })), 4);
    assert.equal(s.sample(logits(), 0, state({ temperature: 0, logitBias: { "1": -100, "4": -100 } })), 2);
    // A small bias moves the choice only as far as it should: 0.5 + 2.6 > 3.0.
    assert.equal(s.sample(logits(), 0, state({ temperature: 0, logitBias: { "3": 2.6 } })), 3);
    assert.equal(s.sample(logits(), 0, state({ temperature: 0, logitBias: { "3": 2.4 } })), 1);
  });

  it("applies to the sampled row in place, leaving the other rows alone", () => {
    const two = Float32Array.from([...logits(), ...logits()]);
    assert.equal(s.sample(two, 5, state({ temperature: 0, logitBias: { "0": 5 } })), 0);
    assert.deepEqual([...two.subarray(0, 5)], [...logits()]);
    assert.equal(two[5], 6);
  });

  it("shifts the sampled distribution: banned tokens never come, a forced one always does", () => {
    for (let seed = 0; seed < 300; seed++) {
      const t = s.sample(logits(), 0, state({ temperature: 1, logitBias: { "1": -100, "4": -100 } }, seed));
      assert.ok(t !== 1 && t !== 4, `banned token ${t} drawn (seed ${seed})`);
      const forced = { temperature: MAX_TEMPERATURE, logitBias: { "3": 100 } };
      assert.equal(s.sample(logits(), 0, state(forced, seed)), 3);
    }
  });

  it("draws from softmax(logits + bias)", () => {
    const bias = { "0": 2, "2": -1 };
    const st = state({ temperature: 1, logitBias: bias }, 5);
    const counts = new Array(5).fill(0);
    const N = 40000;
    for (let i = 0; i < N; i++) counts[s.sample(logits(), 0, st)]++;
    const l = [...logits()].map((v, i) => v + ((bias as Record<string, number>)[String(i)] ?? 0));
    const z = l.reduce((a, v) => a + Math.exp(v), 0);
    l.forEach((v, i) => {
      const p = Math.exp(v) / z;
      const sd = Math.sqrt((p * (1 - p)) / N);
      assert.ok(Math.abs(counts[i] / N - p) < 5 * sd, `token ${i}: ${counts[i] / N} vs ${p}`);
    });
  });

  it("resolves OpenAI's map into parallel typed arrays (none: null)", () => {
    const p = resolveSamplingParams({ logitBias: { "7": -100, "3": 1.5 } });
    assert.ok(p.logitBias);
    assert.ok(p.logitBias.ids instanceof Int32Array && p.logitBias.biases instanceof Float32Array);
    const pairs = [...p.logitBias.ids].map((id, i) => [id, p.logitBias!.biases[i]]);
    assert.deepEqual(
      pairs.sort((a, b) => a[0]! - b[0]!),
      [
        [3, 1.5],
        [7, -100],
      ],
    );
    assert.equal(resolveSamplingParams({}).logitBias, null);
    assert.equal(resolveSamplingParams({ logitBias: {} }).logitBias, null);
    // A resolved one goes through again unchanged.
    const again = resolveSamplingParams({ logitBias: p.logitBias });
    assert.deepEqual([...again.logitBias!.ids], [...p.logitBias.ids]);
  });

  const tooMany = Object.fromEntries(Array.from({ length: 301 }, (_, i) => [String(i), 1]));
  const badBias: [unknown, string][] = [
    ["x", "a string"],
    [[1, 2], "an array"],
    [{ abc: 5 }, "a key that is no token id"],
    [{ "-1": 5 }, "a negative token id"],
    [{ "1.5": 5 }, "a fractional token id"],
    [{ "5": 1000 }, "a bias above 100"],
    [{ "5": -100.5 }, "a bias below -100"],
    [{ "5": Number.NaN }, "a NaN bias"],
    [{ "5": "1" }, "a string bias"],
    [{ "99999999999": 1 }, "a token id beyond any vocabulary"],
    [tooMany, "more than 300 tokens"],
  ];
  for (const [value, what] of badBias) {
    it(`rejects ${what}, naming logit_bias`, () => {
      assert.throws(
        () => resolveSamplingParams({ logitBias: value as Record<string, number> }),
        (e: unknown) => e instanceof InvalidRequestError && e.param === "logit_bias",
      );
    });
  }

  it("accepts 300 tokens and the bounds ±100; with a vocabulary size, ids must lie inside it", () => {
    const ok = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [String(i), i % 2 ? 100 : -100]));
    assert.equal(resolveSamplingParams({ logitBias: ok }).logitBias!.ids.length, 300);
    assert.equal(resolveSamplingParams({ logitBias: { "4": 1 } }, {}, 5).logitBias!.ids[0], 4);
    assert.throws(
      () => resolveSamplingParams({ logitBias: { "5": 1 } }, {}, 5),
      (e: unknown) =>
        e instanceof InvalidRequestError && e.param === "logit_bias" && /vocabulary/.test(e.message),
    );
  });
});
