// The quantized products (weights in ggml block formats, activations quantized per 32 values)
// against the TypeScript reference on odd row counts and batches 1/2/3/5/7/9/10/17/256 (one token;
// small batches below every format's batched threshold, which the 512-bit row paths and the
// lane-sum tile take in chunks of four tokens (7: chunks of 4, 2 and 1) and the AVX2 builds' Q4_K
// and IQ4_XS row paths a token at a time; 9 and 10 on either side of the 512-bit row paths'
// threshold; 17 and 256 the batched kernel with partial tiles of tokens and rows),
// for every block format and every quantized variant this CPU runs; and the reference itself against a float
// product of the dequantized weights, within the activation rounding it allows.
import assert from "node:assert/strict";
import { test } from "node:test";
import { quantizeMatrix } from "../../src/convert/gguf-quantize.js";
import type { PreparedWeight } from "../../src/kernels/backend.js";
import { kernelReport } from "../../src/kernels/index.js";
import type { NativeAddon } from "../../src/kernels/native-addon.js";
import { quantizeActivations } from "../../src/kernels/quant-reference.js";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import {
  dequantizeTensor,
  ggmlQuantName,
  QUANT_BLOCKS,
  quantRowBytes,
} from "../../src/model/gguf-dequant.js";
import { QUANT_TYPES, type QuantTensor, type QuantType } from "../../src/model/tensor.js";
import { randomF32, rng } from "./fixtures.js";
import { nativeKernels } from "./native-setup.js";

const ref = new ReferenceBackend();
const native = nativeKernels();

/** Rows of random values, quantized by the exporter's quantizer; one row is a constant 0. */
function quantWeight(type: QuantType, rows: number, cols: number, seed: number): QuantTensor {
  const x = randomF32(rows * cols, rng(seed), 0.5);
  x.fill(0, 0, cols);
  // Outliers, so some blocks have one large value and small others (Q4_K mins, Q6_K signed scales).
  for (let i = 7; i < x.length; i += 97) x[i] = x[i]! * 9;
  const bytes = quantizeMatrix(type, x, cols);
  const data = new Uint8Array(new SharedArrayBuffer(bytes.length));
  data.set(bytes);
  return { name: `w-${type}`, dtype: type, shape: [rows, cols], data };
}

/** Random bytes as blocks (every bit pattern of the quants and packed scales), with sane f16 scales. */
function noiseWeight(type: QuantType, rows: number, cols: number, seed: number): QuantTensor {
  const rand = rng(seed);
  const data = new Uint8Array(new SharedArrayBuffer(rows * quantRowBytes(type, cols)));
  for (let i = 0; i < data.length; i++) data[i] = Math.floor((rand() + 1) * 128) & 255;
  const { at, bytes } = {
    q8_0: { at: [0], bytes: 34 },
    q4_0: { at: [0], bytes: 18 },
    q4_k: { at: [0, 2], bytes: 144 },
    q6_k: { at: [208], bytes: 210 },
    q4_1: { at: [0, 2], bytes: 20 },
    q5_0: { at: [0], bytes: 22 },
    q5_1: { at: [0, 2], bytes: 24 },
    q5_k: { at: [0, 2], bytes: 176 },
    q3_k: { at: [108], bytes: 110 },
    q2_k: { at: [80, 82], bytes: 84 },
    iq4_nl: { at: [0], bytes: 18 },
    iq4_xs: { at: [0], bytes: 136 },
    mxfp4: { at: [], bytes: 17 },
  }[type];
  for (let b = 0; b < data.length / bytes; b++) {
    for (const o of at) {
      // f16 with exponent 8..13 (about 2^-7 .. 2^-2), either sign for the non-K formats.
      data[b * bytes + o] = Math.floor((rand() + 1) * 128) & 255;
      data[b * bytes + o + 1] =
        (((Math.floor((rand() + 1) * 3) + 8) << 2) | (type.endsWith("_k") ? 0 : rand() < 0 ? 0x80 : 0)) & 255;
    }
  }
  // MXFP4's one-byte E8M0 scale: exponents about 2^-9 .. 2^-4 (its levels reach 12).
  if (type === "mxfp4")
    for (let b = 0; b < data.length / bytes; b++) data[b * bytes] = 119 + Math.floor((rand() + 1) * 3);
  return { name: `noise-${type}`, dtype: type, shape: [rows, cols], data };
}

function colsFor(type: QuantType): number[] {
  // 1056: two whole groups of the AVX-512 row path's 16 blocks and a lone last block.
  return QUANT_BLOCKS[ggmlQuantName(type)].block === 256 ? [256, 768] : [32, 96, 608, 1056];
}

/** |a − b| within rtol of the product's magnitude (its largest |value| over the tokens, at least 1e-3). */
function assertNear(got: Float32Array, want: Float32Array, what: string, rtol: number): void {
  let scale = 1e-3;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < want.length; i++) {
    assert.ok(
      Math.abs(got[i]! - want[i]!) <= rtol * scale,
      `${what}[${i}]: ${got[i]} vs ${want[i]} (scale ${scale})`,
    );
  }
}

test("quantized products match the reference: every format, odd row counts, batch 1/2/3/5/7/9/10/17/256, every variant", () => {
  const { supported } = native.quantInfo();
  assert.ok(supported.includes("portable") && supported.includes("avx2"), supported.join(","));
  const ran = new Set<string>();
  let seed = 1;
  try {
    for (const type of QUANT_TYPES) {
      for (const cols of colsFor(type)) {
        for (const [rows, make] of [
          [37, quantWeight],
          [5, noiseWeight],
          [101, quantWeight],
          [9, noiseWeight],
        ] as const) {
          const w = make(type, rows, cols, seed++);
          const wRef = ref.prepareWeight(w);
          const wNat = native.prepareWeight(w);
          assert.equal(wNat.dtype, type);
          const bias = randomF32(rows, rng(seed++));
          for (const n of [1, 2, 3, 5, 7, 9, 10, 17, 256]) {
            if (n === 256 && rows * cols > 40_000) continue; // the reference is slow; 256 runs on the smaller shapes
            const x = randomF32(n * cols, rng(seed++), 2);
            const want = new Float32Array(n * rows);
            ref.matmul(want, x, wRef, n, n === 3 || n === 7 ? bias : undefined);
            for (const v of supported) {
              native.selectQuantVariant(v);
              const got = new Float32Array(n * rows).fill(Number.NaN);
              native.matmul(got, x, wNat, n, n === 3 || n === 7 ? bias : undefined);
              assertNear(got, want, `${type} ${v} [${rows}x${cols}] n=${n}`, 2e-5);
              ran.add(`${type}/${v}`);
            }
          }
        }
      }
    }
  } finally {
    native.selectQuantVariant(null);
  }
  assert.equal(ran.size, QUANT_TYPES.length * supported.length);
});

test("weights in the 32-value block formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL) are packed 16 rows a vector where the variant has that row path: the reference's products, a tail of rows, one copy per loaded weight", () => {
  const { packedRows, supported } = native.quantInfo();
  const addon = (native as unknown as { addon: NativeAddon }).addon;
  let seed = 700;
  try {
    for (const type of ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl"] as const) {
      // 50 rows: three groups of 16 packed and two rows read as stored; 1056 columns: 33 blocks.
      const w = quantWeight(type, 50, 1056, seed++);
      const wNat = native.prepareWeight(w) as PreparedWeight & { packed?: Uint8Array };
      assert.equal(wNat.packed?.byteLength, packedRows ? 48 * quantRowBytes(type, 1056) : undefined);
      if (packedRows) {
        // A second engine preparing the same loaded weight shares the packed copy.
        assert.equal((native.prepareWeight(w) as typeof wNat).packed, wNat.packed);
        // Q4_0's and IQ4_NL's layout only moves bytes: the same bytes as the 48 rows it packs.
        if (type === "q4_0" || type === "iq4_nl") {
          const sorted = (a: Uint8Array) => Array.from(a).sort((x, y) => x - y);
          assert.deepEqual(sorted(wNat.packed!), sorted(w.data.subarray(0, wNat.packed!.byteLength)));
        }
      }
      // Fewer rows than a group: nothing to pack.
      assert.equal(
        (native.prepareWeight(quantWeight(type, 15, 64, seed++)) as typeof wNat).packed,
        undefined,
      );
      const wRef = ref.prepareWeight(w);
      const bias = randomF32(50, rng(seed++));
      for (const n of [1, 2, 4, 5]) {
        const x = randomF32(n * 1056, rng(seed++), 2);
        const want = new Float32Array(n * 50);
        ref.matmul(want, x, wRef, n, n === 5 ? bias : undefined);
        for (const v of supported) {
          native.selectQuantVariant(v);
          const got = new Float32Array(n * 50).fill(Number.NaN);
          native.matmul(got, x, wNat, n, n === 5 ? bias : undefined);
          assertNear(got, want, `${type} ${v} packed=${native.quantInfo().packedRows} n=${n}`, 2e-5);
        }
      }
    }
  } finally {
    native.selectQuantVariant(null);
  }
  assert.throws(
    () => addon.quantPack(new Uint8Array(4096), new Uint8Array(4096), 2 /* q4_k */, 16, 256),
    /quantPack: q4_k has no packed layout/,
  );
  assert.throws(
    () => addon.quantPack(new Uint8Array(4096), new Uint8Array(4096), 12 /* mxfp4 */, 16, 32),
    /quantPack: mxfp4 has no packed layout/,
  );
  assert.throws(
    () => addon.quantPack(new Uint8Array(100), new Uint8Array(34 * 16), 0 /* q8_0 */, 16, 32),
    /quantPack: dst has 100 bytes, needs at least 544/,
  );
});

test("the reference product is the float product of the dequantized weights, within the activations' rounding", () => {
  for (const type of QUANT_TYPES) {
    const cols = colsFor(type)[1]!;
    const rows = 13;
    const w = quantWeight(type, rows, cols, 50);
    const values = dequantizeTensor(w);
    const x = randomF32(2 * cols, rng(51));
    const got = new Float32Array(2 * rows);
    ref.matmul(got, x, ref.prepareWeight(w), 2);
    const q = new Int8Array(cols);
    const d = new Float32Array(cols / 32);
    for (let t = 0; t < 2; t++) {
      quantizeActivations(x, t * cols, cols, q, d);
      for (let r = 0; r < rows; r++) {
        let exact = 0;
        let bound = 0;
        for (let c = 0; c < cols; c++) {
          const wv = values[r * cols + c]!;
          exact += wv * x[t * cols + c]!;
          // Each activation is within half a step of its block's scale.
          bound += (Math.abs(wv) * d[c >> 5]!) / 2;
          assert.ok(
            Math.abs(d[c >> 5]! * q[c]! - x[t * cols + c]!) <= d[c >> 5]! / 2 + 1e-7,
            `${type} x[${c}]`,
          );
        }
        assert.ok(
          Math.abs(got[t * rows + r]! - exact) <= bound * 1.001 + 1e-6,
          `${type} row ${r}: ${got[t * rows + r]} vs ${exact} ± ${bound}`,
        );
      }
    }
  }
});

test("quantized embedding rows match the dequantized table", () => {
  for (const type of QUANT_TYPES) {
    const dim = colsFor(type)[0]!;
    const table = quantWeight(type, 11, dim, 70);
    const values = dequantizeTensor(table);
    const tokens = Int32Array.from([3, 0, 10, 3]);
    for (const be of [native, ref]) {
      const out = new Float32Array(tokens.length * dim);
      be.embedding(out, table, tokens, tokens.length);
      for (let t = 0; t < tokens.length; t++)
        for (let i = 0; i < dim; i++) {
          const want = values[tokens[t]! * dim + i]!;
          assert.ok(
            Math.abs(out[t * dim + i]! - want) <= Math.abs(want) * 1e-6,
            `${be.name} ${type} [${t}, ${i}]`,
          );
        }
    }
    assert.throws(
      () => native.embedding(new Float32Array(dim), table, Int32Array.of(11), 1),
      /tokens\[0\] = 11 is outside \[0, 11\)/,
    );
  }
});

test("quantized weights with rows that are not whole blocks, or too few bytes, are refused by name", () => {
  const bad: QuantTensor = { name: "odd", dtype: "q4_k", shape: [2, 96], data: new Uint8Array(1000) };
  assert.throws(
    () => native.prepareWeight(bad),
    /odd: q4_k: a row of 96 values is not whole 256-value blocks/,
  );
  assert.throws(() => ref.prepareWeight(bad), /odd: q4_k: a row of 96 values is not whole 256-value blocks/);
  const short: QuantTensor = { name: "short", dtype: "q8_0", shape: [4, 64], data: new Uint8Array(100) };
  assert.throws(() => native.prepareWeight(short), /short has 100 bytes, needs 272/);
  assert.throws(() => native.selectQuantVariant("avx9000"), /variant 'avx9000' is unknown or unsupported/);
  const w = quantWeight("q8_0", 4, 64, 90);
  const p = native.prepareWeight(w);
  assert.throws(
    () => native.matmul(new Float32Array(4), new Float32Array(63), p, 1),
    /x has 63 elements, needs at least 64/,
  );
});

test("the quantized products follow the addon's variant, with VNNI where the CPU has it; doctor names them", () => {
  const q = native.quantInfo();
  const info = native.info();
  assert.equal(q.pinned, false);
  assert.ok(q.supported.includes(q.variant));
  const avx512Quant = info.cpu.includes("avx512vnni") ? "avx512vnni" : "avx512";
  if (/^(avx512|amx)/.test(info.variant)) assert.equal(q.variant, avx512Quant);
  assert.ok(kernelReport().quantProducts.startsWith(`${q.variant}, int8 activations per 32 values`));
  try {
    // Every AVX-512 variant, the AMX ones (the avx512bf16 build plus tiles) among them, takes the
    // AVX-512 quantized products: none falls back to the portable ones.
    for (const v of info.supported.filter((s) => /^(avx512|amx)/.test(s))) {
      native.selectVariant(v);
      assert.equal(native.quantInfo().variant, avx512Quant, `main variant ${v}`);
    }
    native.selectVariant("avx2");
    assert.match(native.quantInfo().variant, /^avx2(vnni)?$/);
    native.selectVariant("portable");
    assert.equal(native.quantInfo().variant, "portable");
  } finally {
    native.selectVariant(info.variant);
  }
  assert.equal(native.quantInfo().variant, q.variant);
});

test("grouped products on quantized experts (a GGUF mixture) equal each expert's own product: every format and variant, empty experts included", () => {
  const { supported } = native.quantInfo();
  let seed = 900;
  try {
    // Rows of 21 are one slice an expert; 600 rows of Q8_0 and MXFP4 are several, which a call's
    // one-token experts share out as one pool job.
    const cases = [
      ...QUANT_TYPES.map((type) => ({ type, rows: 21 })),
      { type: "q8_0" as const, rows: 600 },
      { type: "mxfp4" as const, rows: 600 },
    ];
    for (const { type, rows } of cases) {
      const cols = rows > 100 ? colsFor(type).at(-1)! : colsFor(type)[0]!;
      const experts = Array.from({ length: 5 }, (_, e) => quantWeight(type, rows, cols, seed + e));
      seed += 5;
      const setRef = ref.prepareExperts(experts);
      const setNat = native.prepareExperts(experts);
      assert.equal(setNat.dtype, type);
      // Experts 1 and 3 get no rows; expert 4 gets enough for the batched path (17).
      const counts = [2, 0, 5, 0, 17];
      const start = new Int32Array(counts.length + 1);
      counts.forEach((c, e) => {
        start[e + 1] = start[e]! + c;
      });
      const total = start[counts.length]!;
      const x = randomF32(total * cols, rng(seed++), 2);
      const want = new Float32Array(total * rows);
      for (let e = 0; e < counts.length; e++) {
        if (counts[e] === 0) continue;
        const part = new Float32Array(counts[e]! * rows);
        ref.matmul(
          part,
          x.subarray(start[e]! * cols, start[e + 1]! * cols),
          ref.prepareWeight(experts[e]!),
          counts[e]!,
        );
        want.set(part, start[e]! * rows);
      }
      const viaRef = new Float32Array(total * rows);
      ref.groupedMatmul(viaRef, x, setRef, start);
      assertNear(viaRef, want, `${type} reference grouped`, 1e-6);
      for (const v of supported) {
        native.selectQuantVariant(v);
        const got = new Float32Array(total * rows).fill(Number.NaN);
        native.groupedMatmul(got, x, setNat, start);
        assertNear(got, want, `${type} ${v} grouped`, 2e-5);
      }
    }
    // Experts that differ in format are refused by name.
    const mixed = [quantWeight("q8_0", 4, 32, 1), quantWeight("q4_0", 4, 32, 2)];
    assert.throws(() => native.prepareExperts(mixed), /w-q4_0 is \[4, 32\] q4_0, expert 0 is \[4, 32\] q8_0/);
  } finally {
    native.selectQuantVariant(null);
  }
});
