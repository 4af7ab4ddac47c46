// The native kernels against the reference on odd shapes (sizes that are not multiples of any
// vector width, batches 1/3/17/256), every weight dtype, and every variant this CPU runs.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import type { DType } from "../../src/model/tensor.js";
import { assertClose, randomF32, randomTensor, rng } from "./fixtures.js";
import { forEachVariant, nativeKernels, roundedToBf16 } from "./native-setup.js";

const ref = new ReferenceBackend();
const native = nativeKernels();
const DTYPES: DType[] = ["f32", "bf16", "f16"];

test("the addon reports the variants this CPU supports, portable always among them", () => {
  const info = native.info();
  assert.ok(info.supported.includes("portable"));
  assert.equal(info.variant, info.supported[0]);
  assert.match(native.describe(), new RegExp(`native ${info.variant}`));
});

test("matmul matches the reference for every dtype, batch and variant", () => {
  const ran = new Set<string>();
  const rand = rng(1);
  const shapes: [number, number][] = [
    [37, 131],
    [5, 17],
    [64, 16],
    // Several K blocks of the batched kernel (128 columns), the last with a tail that is no whole
    // vector.
    [23, 601],
    // Past one panel of row tiles (48 rows on AVX2, 96 on AVX-512), ending in a partial tile.
    [101, 40],
    // Long rows, and a row count that leaves batch 1's quarter tiles (rows i, i + q, i + 2q,
    // i + 3q) a remainder row.
    [9, 1601],
    // One and two columns: the bf16 dot variant's packed pairs start at a cache line from K = 2 on,
    // at the group's start for K = 1 (no room to shift).
    [7, 1],
    [5, 2],
    // Whole 32-key steps of the AMX tiles: 32-row blocks, a 16-row block and rows short of a tile
    // (which take the vdpbf16ps tiles), across a 64-row panel.
    [101, 64],
    [48, 96],
  ];
  for (const dtype of DTYPES) {
    for (const [rows, cols] of shapes) {
      const wt = randomTensor("w", dtype, [rows, cols], rand);
      const wRef = ref.prepareWeight(wt);
      const wNat = native.prepareWeight(wt);
      const bias = randomF32(rows, rand);
      // 1: the matvec; 2..8: the small-batch path; 9 and up: outer-product tiles over groups of
      // 32 tokens, with partial token vectors (9..17 and 33 on every width) and second groups of
      // 1 and 8 tokens (33, 40).
      for (const n of [1, 2, 3, 5, 8, 9, 10, 11, 13, 17, 33, 40, 256]) {
        const x = randomF32(n * cols, rand);
        const expected = new Float32Array(n * rows);
        ref.matmul(expected, x, wRef, n, n % 2 ? bias : undefined);
        // A variant with bf16 dot products (vdpbf16ps) multiplies bf16 weights by the activations
        // rounded to bf16: against the reference on those rounded activations, the only difference
        // left is the fp32 summation order.
        const expectedRounded = new Float32Array(n * rows);
        if (dtype === "bf16")
          ref.matmul(expectedRounded, roundedToBf16(x), wRef, n, n % 2 ? bias : undefined);
        forEachVariant(
          native,
          (v) => {
            const out = new Float32Array(n * rows).fill(Number.NaN);
            native.matmul(out, x, wNat, n, n % 2 ? bias : undefined);
            const { bf16Dot, tiles, bf16PackedFrom } = native.info();
            const dot = dtype === "bf16" && bf16Dot;
            assertClose(
              out,
              dot ? expectedRounded : expected,
              `matmul ${v} ${dtype} ${rows}x${cols} batch ${n}`,
            );
            const amx = dot && tiles && n >= bf16PackedFrom && cols % 32 === 0;
            ran.add(amx ? `${v} (AMX tiles)` : dot ? `${v} (bf16 dot)` : v);
            if (amx && n <= 8) ran.add(`${v} (AMX tiles, ${bf16PackedFrom}-8 tokens)`);
          },
          { emulated: true },
        );
      }
    }
  }
  // Which variants ran, so a log shows what this CPU covered.
  console.log(`matmul variants tested: ${[...ran].join(", ")}`);
  const { supported, emulated } = native.info();
  assert.deepEqual(
    [...ran].filter((v) => !v.includes("(")),
    [...supported, ...emulated],
    "every supported and emulated variant ran",
  );
  // The tiles ran wherever this CPU has them or their software twin.
  for (const v of [...supported, ...emulated].filter((x) => x.startsWith("amx"))) {
    assert.ok(ran.has(`${v} (AMX tiles)`), `${v} took its tiles`);
    // Batches of 6 to 8 tokens too: the streaming vdpbf16ps tiles are slower there on AMX CPUs.
    assert.ok(
      [...ran].some((r) => r.startsWith(`${v} (AMX tiles, `)),
      `${v} took its tiles for a small batch`,
    );
  }
});

test("a threaded matmul gives the same result with 1 and 3 threads", () => {
  const rand = rng(2);
  const wt = randomTensor("w", "bf16", [515, 257], rand);
  const w = native.prepareWeight(wt);
  for (const n of [1, 17]) {
    const x = randomF32(n * 257, rand);
    const expected = new Float32Array(n * 515);
    // bf16 dot products (where the variant has them) take the activations rounded to bf16.
    ref.matmul(expected, native.info().bf16Dot ? roundedToBf16(x) : x, ref.prepareWeight(wt), n);
    try {
      for (const threads of [1, 3]) {
        native.setThreads(threads);
        const out = new Float32Array(n * 515);
        native.matmul(out, x, w, n);
        assertClose(out, expected, `matmul ${threads} threads batch ${n}`);
      }
    } finally {
      native.setThreads(2);
    }
  }
});

test("products of 1 to 8 tokens give the same bits with their weight rows asked for ahead in software and without (every dtype and variant)", () => {
  // Read-ahead (read_ahead_policy.h, on by default on Intel CPUs) only asks for lines: the sums
  // must not move. 1029 rows: four streams a slice and the rows past them; K = 200: a row that
  // ends off a cache line and a scalar tail past the last whole vector.
  const rand = rng(13);
  const [rows, cols] = [1029, 200];
  try {
    for (const dtype of DTYPES) {
      const wt = randomTensor("w", dtype, [rows, cols], rand);
      const w = native.prepareWeight(wt);
      for (const n of [1, 2, 8]) {
        const x = randomF32(n * cols, rand);
        forEachVariant(native, (v) => {
          const run = (ahead: boolean) => {
            native.setReadAhead(ahead);
            assert.equal(native.info().readAhead, ahead);
            const out = new Float32Array(n * rows).fill(Number.NaN);
            native.matmul(out, x, w, n);
            return out;
          };
          assert.deepEqual(run(true), run(false), `${v} ${dtype} batch ${n}`);
        });
      }
    }
  } finally {
    native.setReadAhead(null);
  }
});

test("the AMX tiles (or their software twin) give the same products on 1 and 3 threads", () => {
  const { supported, emulated, cpu } = native.info();
  const amx = [...supported, ...emulated].filter((v) => v.startsWith("amx"));
  // Both need AVX-512-BF16 (the twin is the same build with the tile instructions in software).
  assert.equal(amx.length > 0, cpu.includes("avx512bf16"));
  const rand = rng(12);
  // 515 rows: slices of whole 32-row blocks, 16-row blocks and rows short of a tile; 40 tokens: a
  // second group of 8; K = 256: eight 32-key steps.
  const wt = randomTensor("w", "bf16", [515, 256], rand);
  const w = native.prepareWeight(wt);
  const x = randomF32(40 * 256, rand);
  const bias = randomF32(515, rand);
  const expected = new Float32Array(40 * 515);
  ref.matmul(expected, roundedToBf16(x), ref.prepareWeight(wt), 40, bias);
  try {
    for (const v of amx)
      for (const threads of [1, 3]) {
        native.selectVariant(v);
        native.setThreads(threads);
        assert.ok(native.info().tiles, `${v} has tiles`);
        const out = new Float32Array(40 * 515).fill(Number.NaN);
        native.matmul(out, x, w, 40, bias);
        assertClose(out, expected, `matmul ${v} ${threads} threads`);
      }
  } finally {
    native.setThreads(2);
    native.selectVariant(supported[0]!);
  }
  console.log(`AMX tile variants tested: ${amx.join(", ")}`);
});

test("embedding gathers rows from f32/bf16/f16 tables exactly", () => {
  const rand = rng(3);
  for (const dtype of DTYPES) {
    const table = randomTensor("embed", dtype, [50, 37], rand);
    const tokens = new Int32Array([0, 49, 7, 7, 23]);
    const expected = new Float32Array(5 * 37);
    ref.embedding(expected, table, tokens, 5);
    forEachVariant(native, (v) => {
      const out = new Float32Array(5 * 37);
      native.embedding(out, table, tokens, 5);
      assert.deepEqual(out, expected, `embedding ${v} ${dtype}`);
    });
  }
});

test("rmsnorm, rope, siluMul, add, softmax and logSoftmax match the reference", () => {
  const rand = rng(4);
  const nTok = 3;
  const dim = 67;
  const nHeads = 3;
  const headDim = 22;
  const maxPos = 40;
  const cos = randomF32(maxPos * (headDim / 2), rand);
  const sin = randomF32(maxPos * (headDim / 2), rand);
  const positions = new Int32Array([0, 39, 12]);
  const x = randomF32(nTok * dim, rand, 3);
  const y = randomF32(nTok * dim, rand, 3);
  const weight = randomF32(dim, rand);
  const big = randomF32(2 * 1003, rand, 20);
  forEachVariant(native, (v) => {
    const run = (
      fn: (b: typeof ref | typeof native, out: Float32Array) => void,
      size: number,
      what: string,
    ) => {
      const e = new Float32Array(size);
      const a = new Float32Array(size);
      fn(ref, e);
      fn(native, a);
      assertClose(a, e, `${what} ${v}`);
    };
    run((b, o) => b.rmsnorm(o, x, weight, nTok, dim, 1e-5), nTok * dim, "rmsnorm");
    run((b, o) => b.siluMul(o, x, y, nTok * dim), nTok * dim, "siluMul");
    run((b, o) => b.add(o, x, y, nTok * dim), nTok * dim, "add");
    run(
      (b, o) => {
        o.set(x.subarray(0, nTok * nHeads * headDim));
        b.rope(o, positions, nTok, nHeads, headDim, cos, sin);
      },
      nTok * nHeads * headDim,
      "rope",
    );
    // Partial rotary embeddings: 6 of the head's 22 dims rotate (pairs 0-3 with 3-5 ... within
    // them, tables of 3 a position), and every other dim comes back as it went in.
    run(
      (b, o) => {
        o.set(x.subarray(0, nTok * nHeads * headDim));
        b.rope(
          o,
          positions,
          nTok,
          nHeads,
          headDim,
          cos.subarray(0, maxPos * 3),
          sin.subarray(0, maxPos * 3),
          6,
        );
        for (let t = 0; t < nTok * nHeads; t++)
          for (let i = 6; i < headDim; i++)
            assert.equal(o[t * headDim + i], x[t * headDim + i], "a passed-through dim");
      },
      nTok * nHeads * headDim,
      "rope (6 of 22 dims)",
    );
    run(
      (b, o) => {
        o.set(big);
        b.softmax(o, 2, 1003);
      },
      big.length,
      "softmax",
    );
    run((b, o) => b.logSoftmax(o, big, 2, 1003), big.length, "logSoftmax");
    // Aliased in-place forms the contract allows.
    const inPlace = Float32Array.from(x);
    native.rmsnorm(inPlace, inPlace, weight, nTok, dim, 1e-5);
    const e = new Float32Array(nTok * dim);
    ref.rmsnorm(e, x, weight, nTok, dim, 1e-5);
    assertClose(inPlace, e, `rmsnorm in place ${v}`);
    const ls = Float32Array.from(big);
    native.logSoftmax(ls, ls, 2, 1003);
    const le = new Float32Array(big.length);
    ref.logSoftmax(le, big, 2, 1003);
    assertClose(ls, le, `logSoftmax in place ${v}`);
  });
});

test("siluMul and softmax stay finite on large magnitudes", () => {
  const g = new Float32Array([-120, -50, 50, 120, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const up = new Float32Array(g.length).fill(1);
  const out = new Float32Array(g.length);
  native.siluMul(out, g, up, g.length);
  for (const [i, v] of out.entries()) assert.ok(Number.isFinite(v), `silu[${i}] = ${v}`);
  assert.ok(Math.abs(out[3]! - 120) < 1e-4);
  const x = new Float32Array(33).fill(-1e30);
  x[5] = 1e30;
  native.softmax(x, 1, 33);
  assert.equal(x[5], 1);
  assert.equal(x[0], 0);
});
