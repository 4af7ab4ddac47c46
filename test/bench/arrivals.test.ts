import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { arrivalTimes } from "../../src/bench/arrivals.js";
import { BenchRng } from "../../src/bench/rng.js";
import { mean, std } from "../../src/bench/stats.js";

const many = Array.from({ length: 20_000 }, () => ({ promptLen: 1, outputLen: 1 }));

function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]!);
}

describe("bench arrival processes", () => {
  it("rate inf sends everything at time 0", () => {
    assert.deepEqual(
      arrivalTimes(many.slice(0, 4), { kind: "rate", rate: Number.POSITIVE_INFINITY, burstiness: 1 }, 0),
      [0, 0, 0, 0],
    );
  });

  it("Poisson at rate R: exponential gaps with mean and standard deviation 1/R", () => {
    const g = gaps(arrivalTimes(many, { kind: "rate", rate: 4, burstiness: 1 }, 1));
    assert.ok(Math.abs(mean(g) - 0.25) < 0.01, `mean ${mean(g)}`);
    assert.ok(Math.abs(std(g) - 0.25) < 0.015, `std ${std(g)}`);
  });

  it("gamma burstiness K keeps the mean 1/R and sets the coefficient of variation to 1/√K", () => {
    for (const k of [0.25, 4]) {
      const g = gaps(arrivalTimes(many, { kind: "rate", rate: 10, burstiness: k }, 2));
      const m = mean(g);
      assert.ok(Math.abs(m - 0.1) < 0.006, `K=${k} mean ${m}`);
      const cv = std(g) / m;
      assert.ok(Math.abs(cv - 1 / Math.sqrt(k)) < 0.08 / Math.sqrt(k), `K=${k} cv ${cv}`);
    }
  });

  it("is reproducible from the seed and changes with it", () => {
    const a = arrivalTimes(many.slice(0, 50), { kind: "rate", rate: 2, burstiness: 1 }, 9);
    assert.deepEqual(a, arrivalTimes(many.slice(0, 50), { kind: "rate", rate: 2, burstiness: 1 }, 9));
    assert.notDeepEqual(a, arrivalTimes(many.slice(0, 50), { kind: "rate", rate: 2, burstiness: 1 }, 10));
    assert.equal(a[0], 0);
  });

  it("replays trace timestamps from the first request, divided by the speed-up", () => {
    const trace = [10, 10.5, 12, 20].map((timestamp) => ({ promptLen: 1, outputLen: 1, timestamp }));
    assert.deepEqual(arrivalTimes(trace, { kind: "trace", speedup: 1 }, 0), [0, 0.5, 2, 10]);
    assert.deepEqual(arrivalTimes(trace, { kind: "trace", speedup: 2 }, 0), [0, 0.25, 1, 5]);
    assert.throws(
      () => arrivalTimes([{ promptLen: 1, outputLen: 1 }], { kind: "trace", speedup: 1 }, 0),
      /no timestamp/,
    );
  });

  it("rejects a non-positive rate or burstiness", () => {
    assert.throws(
      () => arrivalTimes(many, { kind: "rate", rate: 0, burstiness: 1 }, 0),
      /rate must be positive/,
    );
    assert.throws(
      () => arrivalTimes(many, { kind: "rate", rate: 1, burstiness: -1 }, 0),
      /burstiness must be positive/,
    );
  });

  it("the generator is uniform on [0, 1)", () => {
    const rng = new BenchRng(3);
    const buckets = new Array(10).fill(0);
    for (let i = 0; i < 100_000; i++) {
      const x = rng.next();
      assert.ok(x >= 0 && x < 1);
      buckets[Math.floor(x * 10)]++;
    }
    for (const b of buckets) assert.ok(Math.abs(b - 10_000) < 500, String(buckets));
  });
});
