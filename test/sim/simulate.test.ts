import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { findAccelerator, resolveModel } from "../../src/sim/catalog.js";
import { attentionTime, nonAttentionTime } from "../../src/sim/cost-model.js";
import { DEFAULT_EFFICIENCY } from "../../src/sim/efficiency.js";
import type { Placement } from "../../src/sim/placement.js";
import type { SimOptions } from "../../src/sim/setup.js";
import { type SimResult, simulate } from "../../src/sim/simulate.js";
import { loadTrace, shapeTrace, shareGptLike, syntheticTrace, type Trace } from "../../src/sim/trace.js";
import { catalog, model, network } from "./tiny-catalog.js";

const PLACEMENTS: Array<[string, Placement, boolean]> = [
  ["homogeneous decode-only", { kind: "homogeneous", device: "TINY", tp: 1, replicas: 2 }, true],
  ["homogeneous colocated", { kind: "homogeneous", device: "TINY", tp: 1, replicas: 2 }, false],
  [
    "lamina",
    { kind: "lamina", modelDevice: "TINY", attentionDevice: "TINY", a: 2, b: 1, microBatches: 3 },
    false,
  ],
  [
    "pd",
    {
      kind: "pd",
      prefillDevice: "TINY",
      prefillTp: 1,
      prefillInstances: 1,
      decodeDevice: "TINY",
      decodeTp: 1,
      decodeInstances: 2,
    },
    false,
  ],
  [
    "adrenaline",
    {
      kind: "adrenaline",
      prefillDevice: "TINY",
      prefillTp: 1,
      prefillInstances: 1,
      decodeDevice: "TINY",
      decodeTp: 1,
      decodeInstances: 1,
      offloadRatio: 0.5,
      prefillShare: 0.7,
    },
    false,
  ],
];

function opts(placement: Placement, decodeOnly: boolean, extra: Partial<SimOptions> = {}): SimOptions {
  return { model, placement, network, catalog, decodeOnly, ...extra };
}

function sumOutput(t: Trace): number {
  return t.output.reduce((s, x) => s + x, 0);
}

const strip = (r: SimResult) => ({ ...r, wallMs: 0 });

describe("sim invariants", () => {
  const trace = syntheticTrace({
    requests: 1500,
    rate: 40,
    meanPrompt: 600,
    meanOutput: 250,
    sigma: 0.9,
    seed: 3,
  });
  for (const [name, placement, decodeOnly] of PLACEMENTS) {
    it(`${name}: every request completes, tokens conserved, KV never above capacity, deterministic`, () => {
      const r = simulate(trace, opts(placement, decodeOnly, { kvHeadroomTokens: 0 }));
      assert.equal(r.completed, trace.arrival.length);
      assert.equal(r.rejected, 0);
      assert.equal(r.outputTokens, sumOutput(trace));
      assert.ok(r.peakKvUtil <= 1, `peak KV ${r.peakKvUtil}`);
      assert.ok(r.peakKvUtil > 0.5, `KV should bind in this setup (peak ${r.peakKvUtil})`);
      assert.ok(r.throughputTokS > 0 && Number.isFinite(r.tbtMs.p99));
      assert.ok(r.tbtMs.p50 <= r.tbtMs.p99 + 1e-9);
      assert.equal(r.ttftMs === null, decodeOnly);
      assert.deepEqual(
        strip(simulate(trace, opts(placement, decodeOnly, { kvHeadroomTokens: 0 }))),
        strip(r),
      );
    });
  }

  it("preemption (KV exhausted by growing requests) recomputes and still finishes everything", () => {
    const sat = shapeTrace(trace, { kind: "saturate" });
    const r = simulate(sat, opts(PLACEMENTS[1]![1], false, { kvHeadroomTokens: 0 }));
    assert.ok(r.preemptions > 0, "expected preemptions");
    assert.equal(r.completed, sat.arrival.length);
    assert.equal(r.outputTokens, sumOutput(sat));
    assert.ok(r.peakKvUtil <= 1);
  });

  it("a request larger than any instance's KV is rejected, not left hanging", () => {
    const t: Trace = {
      name: "big",
      arrival: new Float64Array([0, 0, 1]),
      prompt: new Int32Array([100, 10_000_000, 200]),
      output: new Int32Array([5, 5, 7]),
    };
    const r = simulate(t, opts(PLACEMENTS[0]![1], true));
    assert.equal(r.rejected, 1);
    assert.equal(r.completed, 2);
    assert.equal(r.outputTokens, 12);
  });

  it("one decode-only request takes Σ_k (MTIME(1) + ATIME(prompt + k)) — the engine adds up the cost model", () => {
    const acc = findAccelerator(catalog, "H100");
    const t: Trace = {
      name: "one",
      arrival: new Float64Array([0]),
      prompt: new Int32Array([1000]),
      output: new Int32Array([50]),
    };
    const r = simulate(t, opts({ kind: "homogeneous", device: "H100", tp: 1, replicas: 1 }, true));
    const na = { compute: 0, memory: 0, comm: 0, overhead: 0, total: 0 };
    nonAttentionTime(model, acc, 1, 1, DEFAULT_EFFICIENCY, na);
    let expected = 0;
    for (let k = 0; k < 50; k++)
      expected += na.total + attentionTime(model, acc, 1, 1000 + k, DEFAULT_EFFICIENCY);
    assert.ok(Math.abs(r.makespanS - expected) / expected < 1e-9, `${r.makespanS} vs ${expected}`);
    assert.ok(Math.abs(r.tbtMs.mean - (expected / 50) * 1e3) / r.tbtMs.mean < 1e-9);
    assert.equal(r.avgBatch, 1);
  });

  it("Lamina (Fig. 11 trend): throughput grows with attention workers while KV binds", () => {
    const m70 = resolveModel(catalog, "llama3-70b");
    const sat = shapeTrace(loadTrace("azure-conv"), { kind: "saturate" }, 4000);
    const run = (a: number, b: number) =>
      simulate(sat, {
        model: m70,
        placement: { kind: "lamina", modelDevice: "H100", attentionDevice: "H20", a, b, microBatches: 0 },
        network,
        catalog,
        decodeOnly: true,
      });
    const b1 = run(2, 1);
    const b2 = run(2, 2);
    assert.ok(b2.throughputTokS > 1.5 * b1.throughputTokS, `${b1.throughputTokS} → ${b2.throughputTokS}`);
    assert.ok(b2.avgBatch > 1.6 * b1.avgBatch, `batch ${b1.avgBatch} → ${b2.avgBatch}`);
  });

  it("Adrenaline: offloading grows the decode batch and the throughput when decode KV binds", () => {
    const sat = shareGptLike(3000, Number.POSITIVE_INFINITY, 5);
    const p = (offloadRatio: number | "auto"): Placement => ({
      kind: "adrenaline",
      prefillDevice: "A100-80GB",
      prefillTp: 1,
      prefillInstances: 1,
      decodeDevice: "TINY",
      decodeTp: 1,
      decodeInstances: 1,
      offloadRatio,
      prefillShare: 0.7,
    });
    const none = simulate(sat, opts(p(0), false));
    const half = simulate(sat, opts(p(0.5), false));
    assert.ok(half.avgBatch > 1.5 * none.avgBatch, `${none.avgBatch} → ${half.avgBatch}`);
    assert.ok(
      half.throughputTokS > 1.2 * none.throughputTokS,
      `${none.throughputTokS} → ${half.throughputTokS}`,
    );
  });

  it("configuration errors name the problem", () => {
    assert.throws(
      () =>
        simulate(
          trace,
          opts({ kind: "homogeneous", device: "L40S", tp: 1, replicas: 1 }, true, {
            model: resolveModel(catalog, "llama3-70b"),
          }),
        ),
      /weights \(137\.5 GB\) do not fit on 1×L40S/,
    );
    assert.throws(
      () =>
        simulate(
          trace,
          opts(
            { kind: "lamina", modelDevice: "H100", attentionDevice: "H20", a: 3, b: 2, microBatches: 3 },
            true,
          ),
        ),
      /3 model devices do not split into 2 replicas/,
    );
    assert.throws(
      () => simulate(trace, opts(PLACEMENTS[3]![1], true)),
      /decode-only runs apply to homogeneous and lamina/,
    );
    assert.throws(
      () => simulate(trace, opts({ kind: "homogeneous", device: "X", tp: 1, replicas: 1 }, true)),
      /unknown accelerator "X"/,
    );
  });
});

describe("sim on a full trace", () => {
  // How long this takes is measured by bench/sim/speed.ts, not asserted here.
  it("one hour of Azure-Conv (19,366 requests) completes for every placement kind", () => {
    const conv = loadTrace("azure-conv");
    const m70 = resolveModel(catalog, "llama3-70b");
    const disaggregated = {
      prefillDevice: "H100",
      prefillTp: 2,
      prefillInstances: 2,
      decodeDevice: "H100",
      decodeTp: 4,
      decodeInstances: 1,
    } as const;
    const placements: Placement[] = [
      { kind: "homogeneous", device: "H100", tp: 4, replicas: 1 },
      { kind: "lamina", modelDevice: "H100", attentionDevice: "H20", a: 2, b: 4, microBatches: 0 },
      { kind: "pd", ...disaggregated },
      { kind: "adrenaline", ...disaggregated, offloadRatio: 0.5, prefillShare: 0.7 },
    ];
    for (const placement of placements) {
      const r = simulate(conv, { model: m70, placement, network, catalog });
      assert.equal(r.completed, 19_366, r.label);
      assert.equal(r.outputTokens, sumOutput(conv), r.label);
    }
  });
});
