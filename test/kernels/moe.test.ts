// The mixture-of-experts kernels (routing, gather, grouped products, combine) on both backends
// against the test suite's own routing (test/helpers/reference-moe.ts): ties, several experts per
// token, both weight normalisations, experts with no tokens and experts with more tokens than the
// small-batch path takes, every weight dtype and native variant.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KernelBackend, MoeRouteArgs } from "../../src/kernels/backend.js";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import type { DType } from "../../src/model/tensor.js";
import { referenceElement } from "../helpers/reference-forward.js";
import { referenceBiasedRoute, referenceRoute } from "../helpers/reference-moe.js";
import { assertClose, randomF32, randomTensor, rng } from "./fixtures.js";
import { forEachVariant, nativeKernels, roundedToBf16 } from "./native-setup.js";

const backends: [string, KernelBackend][] = [
  ["reference", new ReferenceBackend()],
  ["native", nativeKernels()],
];

function routeArgs(
  logits: Float32Array,
  nTokens: number,
  nExperts: number,
  topK: number,
  normalizeTopK: boolean,
) {
  const pairs = nTokens * topK;
  return {
    logits,
    nTokens,
    nExperts,
    topK,
    normalizeTopK,
    slotWeight: new Float32Array(pairs),
    slotRow: new Int32Array(pairs),
    rowToken: new Int32Array(pairs),
    expertStart: new Int32Array(nExperts + 1),
  } satisfies MoeRouteArgs;
}

/** Checks a routing against the suite's: experts per slot, weights, and a consistent grouping. */
function checkRouting(a: MoeRouteArgs, what: string): void {
  const { nTokens: n, nExperts: E, topK: k } = a;
  assert.equal(a.expertStart[0], 0, `${what}: expertStart[0]`);
  assert.equal(a.expertStart[E], n * k, `${what}: expertStart[E]`);
  for (let t = 0; t < n; t++) {
    const want = referenceRoute(a.logits.subarray(t * E, (t + 1) * E), k, a.normalizeTopK);
    for (let j = 0; j < k; j++) {
      const row = a.slotRow[t * k + j]!;
      assert.equal(a.rowToken[row], t, `${what}: row ${row} belongs to token ${t}`);
      const e = want.experts[j]!;
      assert.ok(
        row >= a.expertStart[e]! && row < a.expertStart[e + 1]!,
        `${what}: token ${t} slot ${j} should be expert ${e}, row ${row}`,
      );
      assert.ok(
        Math.abs(a.slotWeight[t * k + j]! - want.weights[j]!) < 1e-6,
        `${what}: token ${t} slot ${j} weight`,
      );
    }
  }
  // Within an expert, rows are in token order.
  for (let e = 0; e < E; e++)
    for (let r = a.expertStart[e]! + 1; r < a.expertStart[e + 1]!; r++)
      assert.ok(a.rowToken[r - 1]! < a.rowToken[r]!, `${what}: expert ${e} rows in token order`);
}

test("routing picks the top-k with ties to the lower expert, weights by either normalisation", () => {
  // Token 0: a three-way tie at the top; token 1: ties straddling the k-th place; token 2: all equal.
  const E = 6;
  const logits = Float32Array.from(
    [
      [0.5, 2, 2, -1, 2, 0],
      [3, 1, 0.5, 1, 1, -2],
      [0.25, 0.25, 0.25, 0.25, 0.25, 0.25],
    ].flat(),
  );
  for (const [name, be] of backends) {
    for (const normalize of [true, false]) {
      const a = routeArgs(logits, 3, E, 2, normalize);
      be.moeRoute(a);
      checkRouting(a, `${name} normalize=${normalize}`);
    }
    // The ties resolved explicitly: token 0 → experts 1, 2; token 1 → 0, 1; token 2 → 0, 1.
    const a = routeArgs(logits, 3, E, 2, true);
    be.moeRoute(a);
    const expertOf = (row: number) =>
      [...a.expertStart].findIndex((s, e) => row >= s && row < a.expertStart[e + 1]!);
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5].map((s) => expertOf(a.slotRow[s]!)),
      [1, 2, 0, 1, 0, 1],
      name,
    );
    assert.deepEqual(
      [...a.slotWeight],
      [0.5, 0.5, Math.fround(1 / (1 + Math.exp(-2))), Math.fround(1 / (1 + Math.exp(2))), 0.5, 0.5].map(
        Math.fround,
      ),
      name,
    );
  }
});

test("routing of random logits, several experts per token, matches the suite's on both backends", () => {
  const rand = rng(7);
  for (const [E, k, n] of [
    [8, 2, 1],
    [8, 3, 37],
    [16, 8, 5],
    [4, 4, 9],
  ] as const) {
    const logits = randomF32(n * E, rand, 3);
    for (const [name, be] of backends) {
      for (const normalize of [true, false]) {
        const a = routeArgs(logits, n, E, k, normalize);
        be.moeRoute(a);
        checkRouting(a, `${name} E=${E} k=${k} n=${n} normalize=${normalize}`);
      }
    }
  }
});

test("gather, grouped products and combine equal each token's experts run one by one", () => {
  const rand = rng(11);
  const native = backends[1]![1] as ReturnType<typeof nativeKernels>;
  const ref = backends[0]![1];
  const [E, k, dim, hidden] = [6, 2, 40, 24];
  for (const dtype of ["f32", "bf16", "f16"] as DType[]) {
    const ws = Array.from({ length: E }, (_, e) => randomTensor(`w${e}`, dtype, [hidden, dim], rand, 0.3));
    // 1 token (decode), 5, and 60 (experts with more than 8 rows take the packed batch path).
    for (const n of [1, 5, 60]) {
      const x = randomF32(n * dim, rand);
      const logits = randomF32(n * E, rand, 2);
      // Token t's result with its experts run one at a time, in float64 from the stored weights.
      const expect = (xs: Float32Array): Float64Array => {
        const want = new Float64Array(n * hidden);
        for (let t = 0; t < n; t++) {
          const r = referenceRoute(logits.subarray(t * E, (t + 1) * E), k, true);
          r.experts.forEach((e, j) => {
            for (let o = 0; o < hidden; o++) {
              let s = 0;
              for (let i = 0; i < dim; i++)
                s += xs[t * dim + i]! * referenceElement(dtype, ws[e]!.data, o * dim + i);
              want[t * hidden + o] = want[t * hidden + o]! + r.weights[j]! * s;
            }
          });
        }
        return want;
      };
      const want = expect(x);
      // bf16 dot products (the avx512bf16 variant) multiply bf16 weights by activations rounded to bf16.
      const wantRounded = dtype === "bf16" ? expect(roundedToBf16(x)) : want;
      const run = (be: KernelBackend): Float32Array => {
        const a = routeArgs(logits, n, E, k, true);
        be.moeRoute(a);
        const rows = new Float32Array(n * k * dim);
        be.gatherRows(rows, x, a.rowToken, n * k, dim);
        const y = new Float32Array(n * k * hidden);
        be.groupedMatmul(y, rows, be.prepareExperts(ws), a.expertStart);
        const out = new Float32Array(n * hidden);
        be.moeCombine(out, y, a.slotRow, a.slotWeight, n, k, hidden);
        return out;
      };
      assertClose(run(ref), want, `reference ${dtype} n=${n}`, 1e-5);
      forEachVariant(native, (v) =>
        assertClose(
          run(native),
          native.info().bf16Dot ? wantRounded : want,
          `native ${v} ${dtype} n=${n}`,
          1e-5,
        ),
      );
    }
  }
});

test("routing with a selection bias (ERNIE 4.5): chosen by probability + bias, weighted by probability", () => {
  // Token 0: the bias lifts expert 3 (lowest logit) above expert 1; token 1: with equal
  // probabilities the bias alone orders the experts.
  const E = 4;
  const logits = Float32Array.from([2, 1.5, 0, -1, 0, 0, 0, 0]);
  const bias = Float32Array.from([0, 0, 0.1, 0.9]);
  const p0 = [2, 1.5, 0, -1].map((v) => Math.exp(v)).map((v, _, all) => v / all.reduce((a, b) => a + b));
  for (const [name, be] of backends) {
    const a = { ...routeArgs(logits, 2, E, 2, true), selectionBias: bias };
    be.moeRoute(a);
    const expertOf = (row: number) =>
      [...a.expertStart].findIndex((s, e) => row >= s && row < a.expertStart[e + 1]!);
    assert.deepEqual(
      [0, 1, 2, 3].map((s) => expertOf(a.slotRow[s]!)),
      [3, 0, 3, 2],
      name,
    );
    // Weights: the plain probabilities of experts 3 and 0, renormalised; token 1's are equal.
    const w = [p0[3]! / (p0[3]! + p0[0]!), p0[0]! / (p0[3]! + p0[0]!), 0.5, 0.5];
    for (let j = 0; j < 4; j++) assert.ok(Math.abs(a.slotWeight[j]! - w[j]!) < 1e-6, `${name} slot ${j}`);
  }
  // Random logits and biases against the suite's rule, with and without renormalising (the
  // weights then keep their share of all experts' probability).
  const rand = rng(11);
  for (const [E2, k, n] of [
    [8, 2, 13],
    [16, 6, 5],
  ] as const) {
    const l = randomF32(n * E2, rand, 2);
    const b = randomF32(E2, rand, 0.1);
    for (const [name, be] of backends) {
      for (const normalize of [true, false]) {
        const a = { ...routeArgs(l, n, E2, k, normalize), selectionBias: b };
        be.moeRoute(a);
        for (let t = 0; t < n; t++) {
          const want = referenceBiasedRoute(l.subarray(t * E2, (t + 1) * E2), b, k);
          const total = normalize ? 1 : probabilitiesOf(l.subarray(t * E2, (t + 1) * E2), want.experts);
          for (let j = 0; j < k; j++) {
            const row = a.slotRow[t * k + j]!;
            const e = want.experts[j]!;
            assert.ok(
              row >= a.expertStart[e]! && row < a.expertStart[e + 1]!,
              `${name} E=${E2} t=${t} j=${j}`,
            );
            assert.ok(
              Math.abs(a.slotWeight[t * k + j]! - want.weights[j]! * total) < 1e-6,
              `${name} weight t=${t} j=${j}`,
            );
          }
        }
      }
    }
  }
  for (const [name, be] of backends)
    assert.throws(
      () => be.moeRoute({ ...routeArgs(logits, 2, E, 2, true), selectionBias: new Float32Array(3) }),
      /selectionBias/,
      name,
    );
});

test("routing by sigmoid scores (DeepSeek V3, GLM-4.5): chosen by score + bias, weighted by score times a scale", () => {
  // Token 0: sigmoid scores of [2, 1.5, 0, -1]; the bias lifts expert 3 above expert 1 (as the
  // softmax case above) and expert 2 above expert 0. Token 1 without a bias: the largest scores.
  const E = 4;
  const logits = Float32Array.from([2, 1.5, 0, -1, -1, 3, 0.5, 2]);
  const bias = Float32Array.from([0, 0, 0.9, 0.9]);
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  for (const [name, be] of backends) {
    for (const [selectionBias, normalize, experts, scores] of [
      [bias, true, [2, 3], [sig(0), sig(-1)]],
      [undefined, false, [0, 1], [sig(2), sig(1.5)]],
    ] as const) {
      const a = { ...routeArgs(logits.subarray(0, E), 1, E, 2, normalize), sigmoid: true, scale: 2.5 };
      be.moeRoute(selectionBias ? { ...a, selectionBias } : a);
      const expertOf = (row: number) =>
        [...a.expertStart].findIndex((s, e) => row >= s && row < a.expertStart[e + 1]!);
      assert.deepEqual([expertOf(a.slotRow[0]!), expertOf(a.slotRow[1]!)], [...experts], name);
      const sum = normalize ? scores[0]! + scores[1]! : 1;
      for (let j = 0; j < 2; j++)
        assert.ok(Math.abs(a.slotWeight[j]! - (scores[j]! / sum) * 2.5) < 1e-6, `${name} slot ${j}`);
    }
    // The softmax path takes the scale too.
    const plain = { ...routeArgs(logits, 2, E, 2, true), scale: 3 };
    be.moeRoute(plain);
    assert.ok(Math.abs(plain.slotWeight[0]! + plain.slotWeight[1]! - 3) < 1e-6, name);
    assert.throws(
      () => be.moeRoute({ ...routeArgs(logits, 2, E, 2, true), scale: Number.NaN }),
      /scale/,
      name,
    );
  }
});

/** The summed softmax probability of `experts` (what renormalising divides by). */
function probabilitiesOf(logits: Float32Array, experts: number[]): number {
  const m = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp(v - m));
  const z = e.reduce((a, v) => a + v, 0);
  return experts.reduce((a, i) => a + e[i]! / z, 0);
}

test("bad arguments are refused by name", () => {
  for (const [name, be] of backends) {
    assert.throws(() => be.moeRoute(routeArgs(new Float32Array(8), 2, 4, 5, true)), /topK/, name);
    assert.throws(
      () => be.gatherRows(new Float32Array(8), new Float32Array(8), Int32Array.from([0, 9]), 2, 4),
      /rows\[1\] = 9 is outside x/,
      name,
    );
    assert.throws(
      () =>
        be.moeCombine(
          new Float32Array(4),
          new Float32Array(8),
          Int32Array.from([3]),
          new Float32Array(1),
          1,
          1,
          4,
        ),
      /slotRow\[0\] = 3 is outside y/,
      name,
    );
    const set = be.prepareExperts([
      randomTensor("a", "f32", [2, 3], rng(1)),
      randomTensor("b", "f32", [2, 3], rng(2)),
    ]);
    assert.throws(
      () => be.groupedMatmul(new Float32Array(8), new Float32Array(12), set, Int32Array.from([0, 3, 1])),
      /expertStart/,
      name,
    );
    assert.throws(
      () =>
        be.prepareExperts([
          randomTensor("a", "f32", [2, 3], rng(1)),
          randomTensor("b", "f32", [3, 3], rng(2)),
        ]),
      /prepareExperts: b is \[3, 3\] f32, expert 0 is \[2, 3\] f32/,
      name,
    );
  }
});
