import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { findNetwork, loadCatalog, resolveModel } from "../../src/sim/catalog.js";
import { enumeratePlacements, plan, sloBatchCap } from "../../src/sim/planner.js";
import { loadTrace, shapeTrace } from "../../src/sim/trace.js";

const catalog = loadCatalog();
const network = findNetwork(catalog, "rdma-400g-fhbn");
const model = resolveModel(catalog, "llama3-70b");
const trace = shapeTrace(loadTrace("azure-conv"), { kind: "saturate" }, 2000);

describe("sim planner", () => {
  it("ranks configurations by tokens per dollar, SLO-meeting ones first, and explains the winner", () => {
    const out = plan({
      model,
      trace,
      sloTbtMs: 150,
      devices: ["H100", "H20"],
      network,
      catalog,
      maxConfigs: 24,
    });
    assert.ok(out.simulated > 5);
    assert.ok(out.winner);
    assert.equal(out.ranked[0], out.winner);
    for (let i = 1; i < out.ranked.length; i++) {
      const a = out.ranked[i - 1]!;
      const b = out.ranked[i]!;
      assert.ok(
        Number(a.meetsSlo) > Number(b.meetsSlo) ||
          (a.meetsSlo === b.meetsSlo && a.tokensPerDollar >= b.tokensPerDollar),
      );
    }
    for (const e of out.ranked) if (e.meetsSlo) assert.ok(e.result.tbtMs.p99 <= 150);
    assert.match(out.explanation, /tokens per dollar/);
    assert.match(out.explanation, /Limited by: /);
    const kinds = new Set(out.ranked.map((e) => e.result.placement.kind));
    assert.deepEqual([...kinds].sort(), ["adrenaline", "homogeneous", "lamina", "pd"]);
  });

  it("respects the budget and the device list", () => {
    const ps = enumeratePlacements({
      model,
      trace,
      sloTbtMs: 100,
      budgetPerHour: 30,
      devices: ["H100", "H20"],
      network,
      catalog,
    });
    assert.ok(ps.length > 0);
    for (const p of ps) {
      const json = JSON.stringify(p);
      assert.ok(!/A100|L40S|H200/.test(json), json);
    }
    const out = plan({
      model,
      trace,
      sloTbtMs: 100,
      budgetPerHour: 30,
      devices: ["H100", "H20"],
      network,
      catalog,
      maxConfigs: 10,
    });
    for (const e of out.ranked) assert.ok(e.result.pricePerHour <= 30);
  });

  it("decode-only planning compares homogeneous and Lamina only", () => {
    const ps = enumeratePlacements({
      model,
      trace,
      sloTbtMs: 100,
      devices: ["H100", "H20"],
      network,
      catalog,
      decodeOnly: true,
    });
    assert.deepEqual([...new Set(ps.map((p) => p.kind))].sort(), ["homogeneous", "lamina"]);
  });

  it("the SLO batch cap grows with the SLO; an impossible SLO has no winner", () => {
    const o = {
      model,
      placement: { kind: "homogeneous" as const, device: "H100", tp: 4, replicas: 1 },
      network,
      catalog,
      decodeOnly: true,
    };
    const b50 = sloBatchCap(o, 1260, 0.05, 512);
    const b100 = sloBatchCap(o, 1260, 0.1, 512);
    assert.ok(b50 > 0 && b100 > b50, `${b50} ${b100}`);
    assert.equal(sloBatchCap(o, 1260, 0.001, 512), 0);
    const none = plan({ model, trace, sloTbtMs: 1, devices: ["H100"], network, catalog, maxConfigs: 4 });
    assert.equal(none.winner, null);
    assert.match(none.explanation, /no configuration meets/);
  });
});
