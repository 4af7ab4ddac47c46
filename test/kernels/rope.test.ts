// RoPE tables: llama3, linear and YaRN frequency scaling, checked against the rules written out
// here independently (Hugging Face's `_compute_llama3_parameters` in its where-based form, and
// `_compute_yarn_parameters` in its extrapolation/interpolation-mask form).
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildRopeTables } from "../../src/kernels/rope.js";
import type { ModelConfig, RopeScaling } from "../../src/model/config.js";

function config(headDim: number, ropeTheta: number, ropeScaling: RopeScaling | null): ModelConfig {
  return {
    architecture: "llama",
    vocabSize: 32,
    hiddenSize: headDim * 2,
    intermediateSize: 64,
    numLayers: 1,
    numHeads: 2,
    numKvHeads: 1,
    headDim,
    maxPositionEmbeddings: 131072,
    rmsNormEps: 1e-5,
    ropeTheta,
    ropeScaling,
    tieWordEmbeddings: false,
    attentionBias: false,
    slidingWindow: null,
    bosTokenId: null,
    eosTokenIds: [],
  };
}

function llama3Expected(
  headDim: number,
  theta: number,
  s: Extract<RopeScaling, { type: "llama3" }>,
): number[] {
  const out: number[] = [];
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let j = 0; j < headDim; j += 2) {
    const base = 1 / theta ** (j / headDim);
    const wavelen = (2 * Math.PI) / base;
    const scaled = wavelen > lowWavelen ? base / s.factor : base;
    const smooth =
      (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    const smoothed = ((1 - smooth) * scaled) / s.factor + smooth * scaled;
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    out.push(medium ? smoothed : scaled);
  }
  return out;
}

function assertAngle(
  table: { cos: Float32Array; sin: Float32Array; half: number },
  pos: number,
  freqs: number[],
) {
  for (let i = 0; i < freqs.length; i++) {
    const angle = pos * freqs[i]!;
    const c = table.cos[pos * table.half + i]!;
    const s = table.sin[pos * table.half + i]!;
    assert.ok(Math.abs(c - Math.cos(angle)) < 2e-6, `cos pos ${pos} i ${i}: ${c} vs ${Math.cos(angle)}`);
    assert.ok(Math.abs(s - Math.sin(angle)) < 2e-6, `sin pos ${pos} i ${i}: ${s} vs ${Math.sin(angle)}`);
  }
}

test("unscaled tables: angle = pos * theta^(-2i/headDim)", () => {
  const t = buildRopeTables(config(8, 10000, null), 16);
  assert.equal(t.half, 4);
  assert.equal(t.cos.length, 16 * 4);
  assertAngle(t, 5, [1, 10000 ** -0.25, 10000 ** -0.5, 10000 ** -0.75]);
  assert.equal(t.cos[0], 1);
  assert.equal(t.sin[3], 0);
});

test("llama3 scaling (Llama 3.1 parameters) matches the reference rule in all three bands", () => {
  const scaling = {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  } as const;
  const freqs = llama3Expected(128, 500000, scaling);
  const t = buildRopeTables(config(128, 500000, scaling), 4097);
  for (const pos of [0, 1, 17, 1000, 4096]) assertAngle(t, pos, freqs);
  // High frequencies are untouched, the lowest is divided by the factor, and some are blended.
  assert.equal(freqs[0], 1);
  assert.ok(Math.abs(freqs[63]! - 500000 ** (-126 / 128) / 8) < 1e-18);
  const blended = freqs.filter((f, i) => {
    const base = 500000 ** (-(2 * i) / 128);
    return Math.abs(f - base) > 1e-12 * base && Math.abs(f - base / 8) > 1e-12 * base;
  });
  assert.ok(blended.length > 0, "the medium band is interpolated");
});

test("linear scaling divides positions by the factor", () => {
  const plain = buildRopeTables(config(16, 10000, null), 64);
  const linear = buildRopeTables(config(16, 10000, { type: "linear", factor: 4 }), 64);
  for (let i = 0; i < 8; i++) {
    assert.ok(Math.abs(linear.cos[40 * 8 + i]! - plain.cos[10 * 8 + i]!) < 1e-6);
    assert.ok(Math.abs(linear.sin[40 * 8 + i]! - plain.sin[10 * 8 + i]!) < 1e-6);
  }
});

/** transformers' YaRN: inv_freq = interpolation · (1 − mask) + extrapolation · mask. */
function yarnExpected(headDim: number, theta: number, s: Extract<RopeScaling, { type: "yarn" }>): number[] {
  const corr = (rot: number) =>
    (headDim * Math.log(s.originalMaxPositionEmbeddings / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
  let lo = corr(s.betaFast);
  let hi = corr(s.betaSlow);
  if (s.truncate) [lo, hi] = [Math.floor(lo), Math.ceil(hi)];
  [lo, hi] = [Math.max(lo, 0), Math.min(hi, headDim - 1)];
  if (lo === hi) hi += 0.001;
  const out: number[] = [];
  for (let i = 0; i < headDim / 2; i++) {
    const posFreq = theta ** ((2 * i) / headDim);
    const mask = 1 - Math.min(1, Math.max(0, (i - lo) / (hi - lo)));
    out.push((1 / (s.factor * posFreq)) * (1 - mask) + (1 / posFreq) * mask);
  }
  return out;
}

test("YaRN (Qwen3's recommended 4× over 32k) matches transformers' rule, magnitude included", () => {
  const yarn = (over: Partial<Extract<RopeScaling, { type: "yarn" }>>) =>
    ({
      type: "yarn",
      factor: 4,
      originalMaxPositionEmbeddings: 32768,
      betaFast: 32,
      betaSlow: 1,
      attentionFactor: 1 + 0.1 * Math.log(4),
      truncate: true,
      ...over,
    }) as const;
  for (const s of [
    yarn({}),
    yarn({ truncate: false }),
    yarn({ betaFast: 16, betaSlow: 2, attentionFactor: 1.25 }),
  ]) {
    const freqs = yarnExpected(128, 1000000, s);
    const t = buildRopeTables(config(128, 1000000, s), 40001);
    for (const pos of [0, 1, 333, 40000]) {
      for (let i = 0; i < 64; i++) {
        const a = pos * freqs[i]!;
        const c = t.cos[pos * 64 + i]!;
        const si = t.sin[pos * 64 + i]!;
        assert.ok(Math.abs(c - s.attentionFactor * Math.cos(a)) < 4e-6, `cos pos ${pos} i ${i}`);
        assert.ok(Math.abs(si - s.attentionFactor * Math.sin(a)) < 4e-6, `sin pos ${pos} i ${i}`);
      }
    }
    // Fast frequencies keep their value, the slowest is divided by the factor, and some between are blended.
    assert.equal(freqs[0], 1);
    assert.ok(Math.abs(freqs[63]! / (1000000 ** (-126 / 128) / 4) - 1) < 1e-12);
    const blended = freqs.filter((f, i) => {
      const base = 1000000 ** (-(2 * i) / 128);
      return Math.abs(f - base) > 1e-9 * base && Math.abs(f - base / 4) > 1e-9 * base;
    });
    assert.ok(blended.length > 0, "the ramp blends some frequencies");
  }
});

test("bad sizes are rejected", () => {
  assert.throws(() => buildRopeTables(config(7, 10000, null), 4), /headDim/);
  assert.throws(() => buildRopeTables(config(8, 10000, null), 0), /maxPos/);
});
