import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { findAccelerator, findNetwork, loadCatalog, resolveModel } from "../../src/sim/catalog.js";
import { buildSetup } from "../../src/sim/setup.js";
import { describeRotation, replicaOf, slicesPerReplica } from "../../src/util/rotation.js";

describe("rotational staggered pipelining: one rule for the runtime and the simulator", () => {
  it("consecutive slices of a micro-batch run on consecutive replicas, and n = R + 1 keeps every replica busy", () => {
    for (const R of [1, 2, 3, 5]) {
      const n = R + 1;
      for (let j = 0; j < n; j++)
        for (let k = 0; k < 9; k++)
          assert.equal(replicaOf(j, k + 1, R), (replicaOf(j, k, R) + 1) % R, `R ${R}, j ${j}, k ${k}`);
      // At any slice index, the n micro-batches cover every replica (one of them twice).
      for (let k = 0; k < 9; k++) {
        const used = new Set(Array.from({ length: n }, (_, j) => replicaOf(j, k, R)));
        assert.equal(used.size, R);
      }
    }
    // 3 micro-batches, 6 slices, 2 replicas: 9 each; 7 slices: one replica takes one more.
    assert.deepEqual(slicesPerReplica(3, 6, 2), [9, 9]);
    assert.deepEqual(slicesPerReplica(3, 7, 2), [11, 10]);
    assert.equal(describeRotation(3, 6, 2)[1], "micro-batch 1: s0→mw1 s1→mw0 s2→mw1 s3→mw0 s4→mw1 s5→mw0");
  });

  it("the simulator's Lamina placement states and paces by the same rotation", () => {
    const catalog = loadCatalog();
    const model = resolveModel(catalog, "llama2-7b");
    const setup = buildSetup(
      {
        model,
        catalog,
        network: findNetwork(catalog, "rdma-400g-fhbn"),
        placement: {
          kind: "lamina",
          modelDevice: findAccelerator(catalog, "H100").name,
          attentionDevice: findAccelerator(catalog, "H20").name,
          a: 2,
          b: 2,
          microBatches: 3,
        },
      },
      1000,
    );
    const per = slicesPerReplica(3, model.layers + 1, 2);
    assert.ok(
      setup.notes.some((n) => n.includes("(j + k) mod 2") && n.includes(per.join("/"))),
      setup.notes.join("\n"),
    );
  });
});
