import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { runEngine } from "../../src/sim/engine.js";
import type { Placement } from "../../src/sim/placement.js";
import { buildSetup, type SimOptions } from "../../src/sim/setup.js";
import { simulate } from "../../src/sim/simulate.js";
import { loadTrace, shapeTrace, syntheticTrace, type Trace, traceStats } from "../../src/sim/trace.js";
import { catalog, model, network } from "./tiny-catalog.js";

/**
 * The simulator's exact numbers for a fixed set of runs, one or more per placement kind, compared
 * with a recorded fixture: restructuring the event loop must not move a single bit. After a change
 * that is meant to alter results, rerun with LAMINA_UPDATE_GOLDEN=1 to record the new figures (then
 * `npx biome format --write` the fixture: only its layout changes).
 */
const FIXTURE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../../test/sim/fixtures/engine-golden.json",
);

const arriving = syntheticTrace({
  requests: 600,
  rate: 30,
  meanPrompt: 600,
  meanOutput: 250,
  sigma: 0.9,
  seed: 7,
});
const saturated = shapeTrace(arriving, { kind: "saturate" });
// Kimi's conversations with Mooncake's prefix blocks (prefix caching on the decode instances).
const kimi = shapeTrace(loadTrace("kimi-conv"), { kind: "trace", rateScale: 1 }, 300);
// One-token outputs finish at prefill; the oversized request is rejected up front.
const edgeCases: Trace = {
  name: "edge-cases",
  arrival: new Float64Array([0, 0, 0.001, 0.002, 0.5, 0.5, 1]),
  prompt: new Int32Array([100, 10_000_000, 3000, 50, 700, 1, 20]),
  output: new Int32Array([1, 5, 40, 1, 2, 300, 1]),
};

// Two prefill instances beside the decode instances (PD and Adrenaline).
const PREFILL_SIDE = {
  prefillDevice: "TINY",
  prefillTp: 1,
  prefillInstances: 2,
  decodeDevice: "TINY",
  decodeTp: 1,
} as const;

interface GoldenCase {
  name: string;
  trace: Trace;
  placement: Placement;
  extra?: Partial<SimOptions>;
}

const CASES: GoldenCase[] = [
  {
    name: "homogeneous decode-only, 2 replicas, KV-bound",
    trace: arriving,
    placement: { kind: "homogeneous", device: "TINY", tp: 1, replicas: 2 },
    extra: { decodeOnly: true, kvHeadroomTokens: 0 },
  },
  {
    name: "homogeneous colocated chunked prefill, saturated (preemptions)",
    trace: saturated,
    placement: { kind: "homogeneous", device: "TINY", tp: 1, replicas: 2 },
    extra: { kvHeadroomTokens: 0, chunkTokens: 1024 },
  },
  {
    name: "homogeneous colocated, batch cap binds",
    trace: saturated,
    placement: { kind: "homogeneous", device: "H100", tp: 2, replicas: 1 },
    extra: { maxBatch: 48 },
  },
  {
    name: "homogeneous colocated, Kimi's shared prefixes cached",
    trace: kimi,
    placement: { kind: "homogeneous", device: "H200", tp: 2, replicas: 2 },
  },
  {
    name: "homogeneous edge cases (rejection, one-token outputs)",
    trace: edgeCases,
    placement: { kind: "homogeneous", device: "TINY", tp: 1, replicas: 1 },
  },
  {
    name: "lamina (2,1) with 3 micro-batches, colocated",
    trace: arriving,
    placement: { kind: "lamina", modelDevice: "TINY", attentionDevice: "TINY", a: 2, b: 1, microBatches: 3 },
    extra: { kvHeadroomTokens: 0 },
  },
  {
    name: "lamina (2,4) H100+H20, auto micro-batches, decode-only saturated",
    trace: saturated,
    placement: { kind: "lamina", modelDevice: "H100", attentionDevice: "H20", a: 2, b: 4, microBatches: 0 },
    extra: { decodeOnly: true },
  },
  {
    name: "pd, 2 prefill + 2 decode instances",
    trace: arriving,
    placement: { kind: "pd", ...PREFILL_SIDE, decodeInstances: 2 },
    extra: { kvHeadroomTokens: 0 },
  },
  {
    name: "pd edge cases",
    trace: edgeCases,
    placement: { kind: "pd", ...PREFILL_SIDE, decodeInstances: 1 },
  },
  {
    name: "adrenaline, offload ratio 0.5, saturated",
    trace: saturated,
    placement: {
      kind: "adrenaline",
      ...PREFILL_SIDE,
      decodeInstances: 1,
      offloadRatio: 0.5,
      prefillShare: 0.7,
    },
    extra: { prefillBatchTokens: 4096 },
  },
  {
    name: "adrenaline, load-aware bound under a TPOT SLO",
    trace: arriving,
    placement: {
      kind: "adrenaline",
      ...PREFILL_SIDE,
      decodeInstances: 2,
      offloadRatio: "auto",
      prefillShare: 0.6,
    },
    extra: { tpotSlo: 0.05 },
  },
];

/** FNV-1a over the bytes of the per-request finish times: every request's exact finish, in 8 hex digits. */
function digest(values: Float64Array): string {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** Everything a run produces, as JSON-safe data (NaN written as null, like the CLI's JSON). */
function record(c: GoldenCase): unknown {
  const o: SimOptions = { model, network, catalog, placement: c.placement, ...c.extra };
  const { wallMs: _wall, ...result } = simulate(c.trace, o);
  const ts = traceStats(c.trace);
  const e = runEngine(c.trace, buildSetup(o, ts.meanPrompt + ts.meanOutput / 2), o.model);
  const { tbt, ttft, perRequestFinish, ...totals } = e;
  const hist = (h: typeof tbt) => ({ count: h.count, mean: h.mean(), p50: h.quantile(0.5), max: h.max() });
  const engine = {
    ...totals,
    tbt: hist(tbt),
    ttft: ttft ? hist(ttft) : null,
    finishDigest: digest(perRequestFinish),
  };
  return JSON.parse(JSON.stringify({ result, engine }));
}

describe("simulator golden results", () => {
  if (process.env.LAMINA_UPDATE_GOLDEN === "1" || !existsSync(FIXTURE)) {
    it("records the fixture", () => {
      assert.equal(
        process.env.LAMINA_UPDATE_GOLDEN,
        "1",
        `${FIXTURE} is missing: rerun with LAMINA_UPDATE_GOLDEN=1`,
      );
      const all = Object.fromEntries(CASES.map((c) => [c.name, record(c)]));
      mkdirSync(path.dirname(FIXTURE), { recursive: true });
      writeFileSync(FIXTURE, `${JSON.stringify(all, null, 2)}\n`);
    });
    return;
  }
  const golden = JSON.parse(readFileSync(FIXTURE, "utf8")) as Record<string, unknown>;
  it("the fixture covers exactly these runs", () => {
    assert.deepEqual(Object.keys(golden).sort(), CASES.map((c) => c.name).sort());
  });
  for (const c of CASES) {
    it(`${c.name}: the same numbers as recorded`, () => {
      assert.deepEqual(record(c), golden[c.name]);
    });
  }
});
