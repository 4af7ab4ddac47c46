// The sampler's row kernels (rowSoftmax, argmax, drawIndex) of every variant this CPU runs against
// the reference backend's, on rows of odd lengths, with ties, banned tokens, NaN and bad arguments.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Rng } from "../../src/engine/rng.js";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import { forEachVariant, nativeKernels } from "./native-setup.js";

const ref = new ReferenceBackend();
const native = nativeKernels();

function randomRow(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => 20 * rng.next() - 10);
}

describe("the sampler's row kernels, every variant against the reference", () => {
  it("rowSoftmax: the row's softmax at a temperature, banned tokens at 0, from an offset", () => {
    forEachVariant(native, (variant) => {
      for (const n of [1, 7, 16, 33, 1000, 49_157]) {
        const x = randomRow(n + 5, n);
        if (n > 1) x[5 + Math.floor(n / 2)] = Number.NEGATIVE_INFINITY;
        for (const scale of [1, 1 / 0.6, 1 / 1.7]) {
          const want = new Float32Array(n);
          const got = new Float32Array(n);
          ref.rowSoftmax(want, x, 5, n, scale);
          native.rowSoftmax(got, x, 5, n, scale);
          let sum = 0;
          for (let i = 0; i < n; i++) {
            sum += got[i]!;
            assert.ok(
              Math.abs(got[i]! - want[i]!) <= 1e-5 * want[i]! + 1e-12,
              `${variant} n ${n} [${i}]: ${got[i]} vs ${want[i]}`,
            );
          }
          if (n > 1) assert.equal(got[Math.floor(n / 2)], 0, `${variant}: a banned token has no probability`);
          assert.ok(Math.abs(sum - 1) < 1e-4, `${variant} n ${n}: sum ${sum}`);
        }
      }
    });
  });

  it("argmax: the first index of the largest, ties to the first, a NaN never winning", () => {
    forEachVariant(native, (variant) => {
      for (const n of [1, 2, 15, 16, 17, 130, 128_256]) {
        const x = randomRow(n + 3, 7 * n);
        const check = (what: string) =>
          assert.equal(native.argmax(x, 3, n), ref.argmax(x, 3, n), `${variant} n ${n}: ${what}`);
        check("random");
        if (n < 3) continue;
        x[3 + n - 1] = 50;
        x[3 + Math.floor(n / 3)] = 50; // a tie: the earlier one
        check("tie");
        assert.equal(native.argmax(x, 3, n), Math.floor(n / 3));
        x[3 + 1] = Number.NaN;
        check("a NaN after the first");
        x[3] = Number.NaN;
        check("a NaN first");
        assert.equal(native.argmax(x, 3, n), 0);
      }
    });
  });

  it("drawIndex: where a draw lands, block boundaries and the end included", () => {
    forEachVariant(native, (variant) => {
      const p = Float32Array.from([0.25, 0.25, 0.5]);
      for (const [u, want] of [
        [0, 0],
        [0.2499, 0],
        [0.25, 1],
        [0.5, 2],
        [0.9999, 2],
      ] as const) {
        assert.equal(native.drawIndex(p, 3, u), want, `${variant} u ${u}`);
        assert.equal(ref.drawIndex(p, 3, u), want, `reference u ${u}`);
      }
      // 1000 equal weights: u = (k + 0.5) / 1000 lands on k, across the 64-element blocks.
      const flat = new Float32Array(1000).fill(1);
      for (const k of [0, 63, 64, 65, 127, 128, 500, 999])
        assert.equal(native.drawIndex(flat, 1000, (k + 0.5) / 1000), k, `${variant} k ${k}`);
      // Random rows: the same index as the reference (away from a boundary by more than rounding).
      for (let seed = 0; seed < 50; seed++) {
        const row = new Float32Array(5000);
        ref.rowSoftmax(row, randomRow(5000, seed), 0, 5000, 1);
        const u = new Rng(seed + 1000).next();
        assert.equal(native.drawIndex(row, 5000, u), ref.drawIndex(row, 5000, u), `${variant} seed ${seed}`);
      }
    });
  });

  it("refuses rows shorter than asked, a scale that is not positive and a draw outside [0, 1)", () => {
    const x = new Float32Array(10);
    for (const b of [native, ref]) {
      assert.throws(() => b.rowSoftmax(new Float32Array(10), x, 5, 10, 1), /rowSoftmax/);
      assert.throws(() => b.rowSoftmax(new Float32Array(4), x, 0, 10, 1), /rowSoftmax/);
      assert.throws(() => b.rowSoftmax(new Float32Array(10), x, 0, 10, 0), /rowSoftmax: scale/);
      assert.throws(() => b.argmax(x, 4, 7), /argmax/);
      assert.throws(() => b.drawIndex(x, 11, 0.5), /drawIndex/);
      assert.throws(() => b.drawIndex(x, 10, 1), /drawIndex: u/);
      assert.throws(() => b.drawIndex(x, 10, -0.1), /drawIndex: u/);
      assert.throws(() => b.topK(x, 0, 10, 5, new Int32Array(2)), /topK/);
      assert.throws(() => b.topK(x, 3, 10, 5, new Int32Array(5)), /topK/);
    }
  });
});

describe("topK, every variant against the reference", () => {
  it("the k largest, ties to the lower index, on rows of odd lengths and from an offset", () => {
    forEachVariant(native, (variant) => {
      for (const [n, k] of [
        [1, 1],
        [5, 3],
        [17, 16],
        [33, 5],
        [1000, 20],
        [49_157, 40],
        [128_256, 1],
      ] as const) {
        const x = randomRow(n + 2, n + k);
        // A run of equal values across the cut: only their lower indices make it.
        for (let i = 0; i < Math.min(n, 8); i++) x[2 + Math.floor((i * n) / 8)] = 11;
        const want = new Int32Array(k);
        const got = new Int32Array(k);
        assert.equal(ref.topK(x, 2, n, k, want), k);
        assert.equal(native.topK(x, 2, n, k, got), k);
        const sorted = (a: Int32Array) => [...a].sort((p, q) => p - q);
        assert.deepEqual(sorted(got), sorted(want), `${variant} n ${n} k ${k}`);
      }
      // k past n: every index.
      const x = randomRow(6, 1);
      const idx = new Int32Array(6);
      assert.equal(native.topK(x, 0, 6, 50, idx), 6);
      assert.deepEqual(
        [...idx].sort((p, q) => p - q),
        [0, 1, 2, 3, 4, 5],
      );
    });
  });
});

describe("nucleusCandidates, every variant against the reference", () => {
  it("a superset of the nucleus, in index order, the same indices as the reference", () => {
    forEachVariant(native, (variant) => {
      for (const n of [1, 3, 64, 1001, 128_256]) {
        for (const [seed, spread] of [
          [1, 20],
          [2, 2],
        ] as const) {
          const p = new Float32Array(n);
          const rng = new Rng(seed * n);
          ref.rowSoftmax(
            p,
            Float32Array.from({ length: n }, () => spread * rng.next()),
            0,
            n,
            1,
          );
          for (const topP of [0.1, 0.9, 1]) {
            const want = new Int32Array(n);
            const got = new Int32Array(n);
            // The native kernel may leave out tokens far below the most likely one (under 2^-24 of
            // it) where those above already hold topP: its candidates are the reference's or fewer.
            const mr = ref.nucleusCandidates(p, n, topP, want);
            const m = native.nucleusCandidates(p, n, topP, got);
            assert.ok(m <= mr, `${variant} n ${n} top-p ${topP}: ${m} candidates against ${mr}`);
            const theirs = new Set(want.subarray(0, mr));
            for (const t of got.subarray(0, m))
              assert.ok(theirs.has(t), `${variant}: candidate ${t} not the reference's`);
            // Index order, and the nucleus itself among them (a full sort's).
            for (let c = 1; c < m; c++) assert.ok(got[c]! > got[c - 1]!);
            const order = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]! || a - b);
            const kept = new Set(got.subarray(0, m));
            let cum = 0;
            for (const t of order) {
              assert.ok(kept.has(t), `${variant} n ${n} top-p ${topP}: nucleus token ${t} missing`);
              cum += p[t]!;
              if (cum >= topP) break;
            }
          }
        }
      }
    });
  });

  it("refuses a top-p outside (0, 1] and rows shorter than asked", () => {
    for (const b of [native, ref]) {
      assert.throws(() => b.nucleusCandidates(new Float32Array(4), 4, 0, new Int32Array(4)), /topP/);
      assert.throws(() => b.nucleusCandidates(new Float32Array(4), 4, 1.5, new Int32Array(4)), /topP/);
      assert.throws(
        () => b.nucleusCandidates(new Float32Array(4), 5, 0.5, new Int32Array(5)),
        /nucleusCandidates/,
      );
      assert.throws(
        () => b.nucleusCandidates(new Float32Array(4), 4, 0.5, new Int32Array(3)),
        /nucleusCandidates/,
      );
    }
  });
});
