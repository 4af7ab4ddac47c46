// The kernels Gemma's graph adds: GeGLU with the tanh GELU, soft-capping, scaling, and attention
// with soft-capped scores, native against the reference (and the reference against the formulas)
// on every variant this CPU runs.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KernelBackend, KvDType, KvLayerCache } from "../../src/kernels/backend.js";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import {
  assertClose,
  emptyCache,
  fillCache,
  pagedAttention,
  pagedLayout,
  randomF32,
  rng,
} from "./fixtures.js";
import {
  attentionTakesBf16Dot,
  BF16_DOT_RTOL,
  forEachVariant,
  nativeKernels,
  roundedToBf16,
} from "./native-setup.js";

const ref = new ReferenceBackend();
const native = nativeKernels();
const backends: [string, KernelBackend][] = [
  ["reference", ref],
  ["native", native],
];

const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

test("geluMul, softcap and scale follow their formulas, also in place, on every variant", () => {
  const n = 1000; // not a multiple of any vector width
  const g = randomF32(n, rng(1), 4);
  const u = randomF32(n, rng(2), 2);
  const check = (name: string, b: KernelBackend) => {
    const out = new Float32Array(n);
    b.geluMul(out, g, u, n);
    assertClose(
      out,
      Array.from(g, (x, i) => geluTanh(x) * u[i]!),
      `${name} geluMul`,
    );
    const inPlace = Float32Array.from(g);
    b.geluMul(inPlace, inPlace, u, n);
    assert.deepEqual(inPlace, out, `${name} geluMul in place`);
    b.softcap(out, g, 1.5, n);
    assertClose(
      out,
      Array.from(g, (x) => 1.5 * Math.tanh(x / 1.5)),
      `${name} softcap`,
    );
    assert.ok(Math.max(...out) < 1.5 && Math.max(...g) > 3, "the cap bends large values");
    b.scale(out, g, 6.9375, n);
    assertClose(
      out,
      Array.from(g, (x) => x * 6.9375),
      `${name} scale`,
    );
  };
  check("reference", ref);
  forEachVariant(native, (v) => check(`native ${v}`, native));
  // Known values: transformers' gelu_pytorch_tanh(1) and (-3).
  const out = new Float32Array(2);
  native.geluMul(out, new Float32Array([1, -3]), new Float32Array([1, 1]), 2);
  assert.ok(Math.abs(out[0]! - 0.841192) < 1e-6 && Math.abs(out[1]! + 0.0036374) < 1e-6, `${out}`);
  assert.throws(() => native.softcap(out, out, 0, 2), /cap must be positive/);
  assert.throws(() => ref.softcap(out, out, -1, 2), /cap must be positive/);
});

/** A decode token and a prefill chunk over two sequences; scores large enough for a cap of 1.5 to bend. */
function setup(dtype: KvDType) {
  const nHeads = 4;
  const nKvHeads = 2; // grouped: on avx512bf16 a bf16 cache takes the bf16 dot-product path
  const headDim = 32;
  const layout = pagedLayout([29, 41], 8, rng(5));
  const caches: KvLayerCache[] = [ref, native].map(() =>
    emptyCache(dtype, layout.numBlocks, 8, nKvHeads, headDim),
  );
  fillCache(ref, caches[0]!, layout, rng(6));
  fillCache(native, caches[1]!, layout, rng(6));
  const qSeq = [0, 1, 1, 1];
  const ctxStart = [0, 30, 31, 0];
  const ctxEnd = [29, 39, 40, 41];
  const n = qSeq.length;
  return {
    layout,
    caches,
    q: randomF32(n * nHeads * headDim, rng(7), 3),
    qSeq: new Int32Array(qSeq),
    ctxStart: new Int32Array(ctxStart),
    ctxEnd: new Int32Array(ctxEnd),
    n,
    nHeads,
    nKvHeads,
    headDim,
  };
}

function attend(
  b: KernelBackend,
  cache: KvLayerCache,
  s: ReturnType<typeof setup>,
  softcap: number,
  range?: [Int32Array, Int32Array],
) {
  return pagedAttention(b, cache, s, s.nHeads, s.headDim, {
    scale: 1 / Math.sqrt(24),
    softcap,
    ctxStart: range?.[0],
    ctxEnd: range?.[1],
  });
}

test("attention with soft-capped scores: native matches the reference on every KV dtype and variant", () => {
  for (const dtype of ["f32", "f16", "bf16", "int8"] as const) {
    const s = setup(dtype);
    const expected = attend(ref, s.caches[0]!, s, 1.5);
    const uncapped = attend(ref, s.caches[0]!, s, 0);
    let moved = 0;
    for (let i = 0; i < expected.out.length; i++)
      moved = Math.max(moved, Math.abs(expected.out[i]! - uncapped.out[i]!));
    assert.ok(moved > 0.05, `the cap changes the result (max change ${moved})`);
    // The bf16 dot-product path multiplies queries rounded to bf16 (see attentionTakesBf16Dot).
    const roundedQ = { ...s, q: roundedToBf16(s.q) };
    const expectedDot = attend(ref, s.caches[0]!, roundedQ, 1.5);
    const uncappedDot = attend(ref, s.caches[0]!, roundedQ, 0);
    forEachVariant(native, (v) => {
      const dot = attentionTakesBf16Dot(native, dtype, s.nHeads, s.nKvHeads, s.headDim);
      // int8: its dot-product paths round queries and probabilities to 8 bits (2e-2, as in
      // native-attention-int8), so the cap is also checked to move the native result itself.
      const [want, wantUncapped, rtol] = dot
        ? [expectedDot, uncappedDot, BF16_DOT_RTOL]
        : [expected, uncapped, dtype === "int8" ? 2e-2 : 1e-5];
      const got = attend(native, s.caches[1]!, s, 1.5);
      assertClose(got.out, want.out, `out ${v} ${dtype}`, rtol);
      assertClose(got.lse, want.lse, `lse ${v} ${dtype}`, rtol);
      const plain = attend(native, s.caches[1]!, s, 0);
      assertClose(plain.out, wantUncapped.out, `uncapped out ${v} ${dtype}`, rtol);
      let nativeMoved = 0;
      for (let i = 0; i < got.out.length; i++)
        nativeMoved = Math.max(nativeMoved, Math.abs(got.out[i]! - plain.out[i]!));
      assert.ok(nativeMoved > 0.05, `${v} ${dtype}: the cap moves the native result (${nativeMoved})`);
    });
  }
});

test("soft-capped attention split into two key ranges and merged by lse equals the whole (early q)", () => {
  const s = setup("f32");
  for (const [name, b] of backends) {
    const cache = s.caches[name === "reference" ? 0 : 1]!;
    const whole = attend(b, cache, s, 1.5);
    const mid = Int32Array.from(s.ctxStart, (a, t) => Math.max(a, s.ctxEnd[t]! - 3));
    const early = attend(b, cache, s, 1.5, [s.ctxStart, mid]);
    const late = attend(b, cache, s, 1.5, [mid, s.ctxEnd]);
    b.mergeAttention(early.out, early.lse, late.out, late.lse, s.n, s.nHeads, s.headDim);
    assertClose(early.out, whole.out, `${name} merged out`);
    assertClose(early.lse, whole.lse, `${name} merged lse`);
  }
  const bad = () => attend(native, s.caches[1]!, s, -1);
  assert.throws(bad, /softcap must be 0 \(none\) or positive/);
});

test("activations give an element the same bits wherever a range starts, and saturate at large |x|", () => {
  // The vector code takes a range's last partial vector through a padded copy: an element's value
  // must not depend on the offset its range starts at (thread ranges, batch layouts) or the threads
  // (past 16,384 elements the pool cuts the range).
  const n = 40_003;
  const g = randomF32(n, rng(3), 60); // to ±30: the tanh and the exponential saturate
  const u = randomF32(n, rng(4), 2);
  const ops = {
    siluMul: (b: KernelBackend, out: Float32Array, x: Float32Array, y: Float32Array, m: number) =>
      b.siluMul(out, x, y, m),
    geluMul: (b: KernelBackend, out: Float32Array, x: Float32Array, y: Float32Array, m: number) =>
      b.geluMul(out, x, y, m),
    softcap: (b: KernelBackend, out: Float32Array, x: Float32Array, _y: Float32Array, m: number) =>
      b.softcap(out, x, 5, m),
    swigluClamped: (b: KernelBackend, out: Float32Array, x: Float32Array, y: Float32Array, m: number) =>
      b.swigluClamped(out, x, y, m, 1.702, 7),
  };
  const threadsBefore = native.info().threads;
  try {
    forEachVariant(native, (v) => {
      for (const [name, op] of Object.entries(ops)) {
        const want = new Float32Array(n);
        op(ref, want, g, u, n);
        native.setThreads(2);
        const whole = new Float32Array(n);
        op(native, whole, g, u, n);
        assertClose(whole, want, `${v} ${name} against the reference`);
        assert.ok(whole.every(Number.isFinite), `${v} ${name}: finite at large |x|`);
        for (const threads of [1, 2])
          for (const from of [1, 3, 7, 13]) {
            native.setThreads(threads);
            const part = new Float32Array(n - from);
            op(native, part, g.subarray(from), u.subarray(from), n - from);
            assert.deepEqual(part, whole.subarray(from), `${v} ${name} from ${from}, ${threads} thread(s)`);
          }
      }
      // Saturation: softcap(±1e6) is ±cap exactly, GELU(30) is 30, GELU(-30) is -0 or a tiny negative.
      const out = new Float32Array(2);
      native.softcap(out, new Float32Array([1e6, -1e6]), 5, 2);
      assert.deepEqual([...out], [5, -5], `${v} softcap saturates`);
      native.geluMul(out, new Float32Array([30, -30]), new Float32Array([1, 1]), 2);
      assert.ok(out[0] === 30 && Math.abs(out[1]!) < 1e-30, `${v} GELU saturates: ${out}`);
    });
  } finally {
    native.setThreads(threadsBefore);
  }
});
