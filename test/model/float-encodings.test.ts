// Known bfloat16 and binary16 encodings, written out by hand from the formats' definitions. They
// pin the float64 reference's own decoder (the tiny-model logits are judged against it) and the
// code under test: the model's decoders and round-to-nearest-even encoders, and the embedding of
// both kernel backends, which read bf16/f16 tables directly.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import {
  bf16ToF32,
  type DType,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  readElement,
  type Tensor,
  toFloat32,
} from "../../src/model/tensor.js";
import { decodeBf16, decodeF16, referenceElement } from "../helpers/reference-forward.js";
import { forEachVariant, nativeKernels } from "../kernels/native-setup.js";

type Known = readonly [bits: number, value: number, what: string];

const BF16: readonly Known[] = [
  [0x3f80, 1, "one"],
  [0xbf80, -1, "minus one"],
  [0xc000, -2, "minus two"],
  [0x3f81, 1 + 2 ** -7, "one ulp above one"],
  [0x4049, 3.140625, "pi, truncated to 7 fraction bits"],
  [0x0000, 0, "zero"],
  [0x8000, -0, "negative zero"],
  [0x7f80, Number.POSITIVE_INFINITY, "+inf"],
  [0xff80, Number.NEGATIVE_INFINITY, "-inf"],
  [0x7f7f, (2 - 2 ** -7) * 2 ** 127, "largest finite"],
  [0x0080, 2 ** -126, "smallest normal"],
  [0x007f, 127 * 2 ** -133, "largest subnormal"],
  [0x0001, 2 ** -133, "smallest subnormal"],
  [0x8001, -(2 ** -133), "negative smallest subnormal"],
  [0x7fc0, Number.NaN, "quiet NaN"],
  [0xffc1, Number.NaN, "negative NaN with a payload"],
];

const F16: readonly Known[] = [
  [0x3c00, 1, "one"],
  [0xbc00, -1, "minus one"],
  [0xc000, -2, "minus two"],
  [0x3c01, 1 + 2 ** -10, "one ulp above one"],
  [0x3555, 0.333251953125, "a third, rounded"],
  [0x0000, 0, "zero"],
  [0x8000, -0, "negative zero"],
  [0x7bff, 65504, "largest finite"],
  [0x0400, 2 ** -14, "smallest normal"],
  [0x03ff, 1023 * 2 ** -24, "largest subnormal"],
  [0x0001, 2 ** -24, "smallest subnormal"],
  [0x7c00, Number.POSITIVE_INFINITY, "+inf"],
  [0xfc00, Number.NEGATIVE_INFINITY, "-inf"],
  [0x7e00, Number.NaN, "quiet NaN"],
  [0xfd01, Number.NaN, "negative NaN with a payload"],
];

/** Exact f32 inputs that fall between encodings, and the round-to-nearest-even result. */
const BF16_ROUNDING: readonly Known[] = [
  [0x3f80, 1 + 2 ** -8, "halfway above one: ties to the even 0x3f80"],
  [0x3f82, 1 + 3 * 2 ** -8, "halfway above 0x3f81: ties to the even 0x3f82"],
  [0x3f81, 1 + 2 ** -8 + 2 ** -20, "just past halfway: up"],
  [0x7f80, 2 ** 128 - 2 ** 119, "halfway past the largest finite: ties to even, which is +inf"],
  [0x7f7f, 2 ** 128 - 2 ** 119 - 2 ** 104, "just under that halfway: the largest finite"],
];

const F16_ROUNDING: readonly Known[] = [
  [0x3c00, 1 + 2 ** -11, "halfway above one: ties to the even 0x3c00"],
  [0x3c02, 1 + 3 * 2 ** -11, "halfway above 0x3c01: ties to the even 0x3c02"],
  [0x7c00, 65520, "halfway between 65504 and 2^16: ties to even, which overflows to +inf"],
  [0x7bff, 65519, "just under that halfway: the largest finite"],
  [0x0000, 2 ** -25, "half the smallest subnormal: ties to the even zero"],
  [0x0002, 3 * 2 ** -25, "one and a half smallest subnormals: ties to the even 2"],
  [0x0000, 2 ** -40, "far below the smallest subnormal: zero"],
];

function same(got: number, want: number, what: string): void {
  if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `${what}: ${got} is not NaN`);
  else assert.ok(Object.is(got, want), `${what}: got ${got}, want ${want}`);
}

const formats: { dtype: DType; known: readonly Known[]; decode: (b: number) => number }[] = [
  { dtype: "bf16", known: BF16, decode: decodeBf16 },
  { dtype: "f16", known: F16, decode: decodeF16 },
];

describe("16-bit float encodings", () => {
  for (const { dtype, known, decode } of formats) {
    const data = Uint16Array.from(known, ([bits]) => bits);
    const srcDecode = dtype === "bf16" ? bf16ToF32 : f16ToF32;

    it(`${dtype}: the reference's decoder gives the known values`, () => {
      for (const [bits, value, what] of known) same(decode(bits), value, `${what} (0x${bits.toString(16)})`);
      for (const [i, [bits, value, what]] of known.entries())
        same(referenceElement(dtype, data, i), value, `${what} (0x${bits.toString(16)}) by element`);
    });

    it(`${dtype}: the model's decoders give the known values`, () => {
      const widened = toFloat32({ name: "t", dtype, shape: [data.length], data });
      for (const [i, [bits, value, what]] of known.entries()) {
        const w = `${what} (0x${bits.toString(16)})`;
        same(srcDecode(bits), value, w);
        same(readElement(dtype, data, i), value, w);
        same(widened[i]!, value, `${w}, widened`);
      }
    });

    it(`${dtype}: the model's encoder gives the known bits, rounding to nearest even`, () => {
      const encode = dtype === "bf16" ? f32ToBf16 : f32ToF16;
      for (const [bits, value, what] of known) {
        const got = encode(value);
        if (Number.isNaN(value)) assert.ok(Number.isNaN(srcDecode(got)), `${what}: 0x${got.toString(16)}`);
        else assert.equal(got, bits, `${what}: 0x${got.toString(16)}, want 0x${bits.toString(16)}`);
      }
      for (const [bits, value, what] of dtype === "bf16" ? BF16_ROUNDING : F16_ROUNDING) {
        assert.equal(Math.fround(value), value, `${what}: the input is an exact f32`);
        const got = encode(value);
        assert.equal(got, bits, `${what}: 0x${got.toString(16)}, want 0x${bits.toString(16)}`);
        assert.equal(encode(-value), bits | 0x8000, `${what}, negated`);
      }
    });

    it(`${dtype}: both kernel backends' embedding reads the known values`, () => {
      // A [n, 1] table: token i is encoding i.
      const table: Tensor = { name: "embed", dtype, shape: [data.length, 1], data };
      const tokens = Int32Array.from(data, (_, i) => i);
      const check = (out: Float32Array, who: string) => {
        for (const [i, [bits, value, what]] of known.entries())
          same(out[i]!, value, `${who}: ${what} (0x${bits.toString(16)})`);
      };
      const ref = new Float32Array(data.length);
      new ReferenceBackend().embedding(ref, table, tokens, data.length);
      check(ref, "reference backend");
      const native = nativeKernels();
      forEachVariant(native, (v) => {
        const out = new Float32Array(data.length);
        native.embedding(out, table, tokens, data.length);
        check(out, `native ${v}`);
      });
    });
  }
});
