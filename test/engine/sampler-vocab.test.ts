// The sampler over vocabularies of real models' size: top-p's nucleus found from probability
// buckets (only those candidates sorted) must be the one a full sort gives, and the kernels' row
// softmax must draw from the distribution the sampler's own loop draws from.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Rng } from "../../src/engine/rng.js";
import { Sampler, type SamplingKernels, type SamplingState } from "../../src/engine/sampler.js";
import { resolveSamplingParams, type SamplingInput } from "../../src/engine/sampling-params.js";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import { nativeKernels } from "../kernels/native-setup.js";

function state(params: SamplingInput, seed: number): SamplingState {
  return {
    params: resolveSamplingParams(params),
    rng: new Rng(seed),
    promptTokens: [],
    outputCounts: new Map(),
  };
}

/** Seeded logits: a peaked head over a broad tail, as a language model's often are. */
function logitsOf(V: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(V);
  for (let i = 0; i < V; i++) x[i] = 3 * rng.next();
  for (let i = 0; i < 40; i++) x[Math.floor(rng.next() * V)] = 7 + 2 * rng.next();
  return x;
}

/** softmax(x / T) in doubles. */
function probsOf(x: Float32Array, temperature: number): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of x) max = Math.max(max, v);
  const p = Float64Array.from(x, (v) => Math.exp((v - max) / temperature));
  const z = p.reduce((a, v) => a + v, 0);
  return p.map((v) => v / z);
}

/** The nucleus by a full sort: the most likely tokens (ties: lower id first) until their mass reaches topP. */
function nucleusOf(p: Float64Array, topP: number): Set<number> {
  const order = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]! || a - b);
  const kept = new Set<number>();
  let cum = 0;
  for (const t of order) {
    kept.add(t);
    cum += p[t]!;
    if (cum >= topP) break;
  }
  return kept;
}

/** The distinct tokens `sampler` draws from x under `input` for seeds 0 .. seeds − 1, ascending. */
function tokensDrawn(sampler: Sampler, x: Float32Array, input: SamplingInput, seeds: number): number[] {
  const seen = new Set<number>();
  for (let seed = 0; seed < seeds; seed++) seen.add(sampler.sample(x.slice(), 0, state(input, seed)));
  return ascending(seen);
}

function ascending(xs: Iterable<number>): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** |observed − expected| in standard deviations of a binomial proportion over n draws. */
function sigmas(observed: number, p: number, n: number): number {
  return Math.abs(observed - p) / Math.sqrt((p * (1 - p)) / n);
}

describe("the sampler over a large vocabulary", () => {
  const V = 20_000;

  for (const topP of [0.5, 0.9, 0.99]) {
    it(`top-p ${topP} draws only from the nucleus a full sort gives, in its proportions`, () => {
      const x = logitsOf(V, 3);
      const p = probsOf(x, 1);
      const nucleus = nucleusOf(p, topP);
      const mass = [...nucleus].reduce((a, t) => a + p[t]!, 0);
      const sampler = new Sampler(V);
      const N = 1500;
      const counts = new Map<number, number>();
      for (let seed = 0; seed < N; seed++) {
        const t = sampler.sample(x.slice(), 0, state({ temperature: 1, topP }, seed));
        assert.ok(nucleus.has(t), `token ${t} (p ${p[t]}) is outside the nucleus of ${nucleus.size}`);
        counts.set(t, (counts.get(t) ?? 0) + 1);
      }
      // The nucleus's likeliest tokens come at their share of it.
      const top = [...nucleus].sort((a, b) => p[b]! - p[a]!).slice(0, 5);
      for (const t of top) {
        const want = p[t]! / mass;
        assert.ok(
          sigmas((counts.get(t) ?? 0) / N, want, N) < 4,
          `token ${t}: ${(counts.get(t) ?? 0) / N} vs ${want}`,
        );
      }
    });
  }

  it("top-p's boundary inside a run of equal probabilities keeps the lower ids, and every member comes", () => {
    // One token at 0.31, ten tied at 0.041 each, the rest a broad tail: the 0.5 nucleus is the first
    // token and the five lowest ids of the tie (0.31 + 5 × 0.041 ≥ 0.5).
    const x = new Float32Array(V);
    x[100] = 10;
    for (let t = 200; t < 210; t++) x[t] = 8;
    const nucleus = nucleusOf(probsOf(x, 1), 0.5);
    assert.deepEqual(ascending(nucleus), [100, 200, 201, 202, 203, 204]);
    assert.deepEqual(tokensDrawn(new Sampler(V), x, { temperature: 1, topP: 0.5 }, 400), ascending(nucleus));
  });

  it("a seed's draw stays put when the logits move in their last bits (a sequence batched otherwise)", () => {
    const x = logitsOf(V, 21);
    const nudged = Float32Array.from(x, (v, i) => v * (1 + (i % 7 === 0 ? 2e-4 : -1e-4)));
    const sampler = new Sampler(V);
    for (const input of [
      { temperature: 0.9, topK: 40, topP: 0.95 },
      { temperature: 0.9, topK: 40, minP: 0.02, topP: 0.95 },
      { temperature: 0.5, topP: 0.9 },
      { temperature: 1, topK: 50 },
    ]) {
      let moved = 0;
      for (let seed = 0; seed < 300; seed++) {
        const a = sampler.sample(x.slice(), 0, state(input, seed));
        const b = sampler.sample(nudged.slice(), 0, state(input, seed));
        if (a !== b) moved++;
      }
      assert.ok(moved <= 5, `${JSON.stringify(input)}: ${moved} of 300 seeds drew another token`);
    }
  });

  it("top-p keeps the whole nucleus when it spans most of the vocabulary", () => {
    // Nearly flat logits: the 0.9 nucleus holds about 18,000 tokens, all of them candidates.
    const x = Float32Array.from({ length: V }, (_, i) => (i % 97) * 1e-3);
    const p = probsOf(x, 1);
    const nucleus = nucleusOf(p, 0.9);
    assert.ok(nucleus.size > 16_000, `${nucleus.size}`);
    const sampler = new Sampler(V);
    for (let seed = 0; seed < 100; seed++) {
      const t = sampler.sample(x.slice(), 0, state({ temperature: 1, topP: 0.9 }, seed));
      assert.ok(nucleus.has(t), `token ${t} is outside the nucleus`);
    }
  });

  it("top-p after min-p: the nucleus of what min-p kept, by the same rule", () => {
    const x = logitsOf(V, 11);
    const p = probsOf(x, 1);
    let pmax = 0;
    for (const v of p) pmax = Math.max(pmax, v);
    const kept = p.map((v) => (v >= 0.05 * pmax ? v : 0));
    const nucleus = nucleusOf(kept, 0.6);
    const sampler = new Sampler(V);
    for (let seed = 0; seed < 1000; seed++) {
      const t = sampler.sample(x.slice(), 0, state({ temperature: 1, minP: 0.05, topP: 0.6 }, seed));
      assert.ok(nucleus.has(t), `token ${t} is outside the nucleus`);
    }
  });

  const kernels: [string, () => SamplingKernels][] = [
    ["the reference backend", () => new ReferenceBackend()],
    ["the native backend", () => nativeKernels()],
  ];
  for (const [name, make] of kernels) {
    it(`${name}'s row kernels draw from the softmax distribution, with and without top-p`, () => {
      const W = 3000;
      const x = logitsOf(W, 5);
      const own = new Sampler(W);
      const withKernels = new Sampler(W, make());
      for (const [T, topP] of [
        [0.7, 1],
        [1.3, 0.8],
      ] as const) {
        const p = probsOf(x, T);
        const nucleus = nucleusOf(p, topP);
        const mass = [...nucleus].reduce((a, t) => a + p[t]!, 0);
        const N = 6000;
        const a = new Map<number, number>();
        const b = new Map<number, number>();
        for (let seed = 0; seed < N; seed++) {
          const ta = own.sample(x.slice(), 0, state({ temperature: T, topP }, seed));
          const tb = withKernels.sample(x.slice(), 0, state({ temperature: T, topP }, seed));
          assert.ok(nucleus.has(tb), `token ${tb} is outside the nucleus`);
          a.set(ta, (a.get(ta) ?? 0) + 1);
          b.set(tb, (b.get(tb) ?? 0) + 1);
        }
        const top = [...nucleus].sort((i, j) => p[j]! - p[i]!).slice(0, 6);
        for (const t of top) {
          const want = p[t]! / mass;
          for (const [who, c] of [
            ["own loop", a],
            [name, b],
          ] as const)
            assert.ok(
              sigmas((c.get(t) ?? 0) / N, want, N) < 4,
              `${who}, T ${T}, token ${t}: ${(c.get(t) ?? 0) / N} vs ${want}`,
            );
        }
      }
    });
  }

  it("a vocabulary too wide for the packed sort keys sorts its nucleus by a comparator", () => {
    const wide = (1 << 20) + 16;
    const x = new Float32Array(wide);
    // Three likely tokens at the far end (ids past the keys' span) and one near the start.
    x[wide - 1] = 30;
    x[wide - 2] = 29.5;
    x[wide - 3] = 29;
    x[5] = 29.8;
    const p = probsOf(x, 1);
    const nucleus = nucleusOf(p, 0.7);
    assert.deepEqual(ascending(nucleus), [5, wide - 2, wide - 1]);
    assert.deepEqual(tokensDrawn(new Sampler(wide), x, { temperature: 1, topP: 0.7 }, 60), [
      5,
      wide - 2,
      wide - 1,
    ]);
  });
});
