// The model plane over TCP (`--model-plane tcp`): each model worker keeps its own copy of the plane
// and the front end and the replicas send each other what they wrote (the step, each slice's
// context, the logits) as frames, so model workers can run on other hosts. Every topology must give
// the colocated greedy tokens, as over shared memory.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RemoteAttentionService } from "../../src/attention/remote-service.js";
import { loadModel } from "../../src/model/load.js";
import { buildEngine } from "../../src/placement/build.js";
import { RW } from "../../src/runtime/model-plane.js";
import { runToCompletion } from "../helpers/engine-driver.js";
import { killedMidRun, malformedStep, stoppedMidRun } from "../helpers/model-worker-faults.js";
import {
  backend,
  closeCore,
  colocated,
  requests,
  storiesDir,
  withModelWorkers,
} from "../helpers/model-workers.js";

describe("model plane over TCP: stories260K over every topology equals colocated", async () => {
  const model = await loadModel(storiesDir);
  const reqs = requests(model);
  const expected = await colocated(model, reqs);
  const frontEnd = await loadModel(storiesDir, { weights: false });
  for (const modelWorkers of [1, 2])
    for (const attentionWorkers of [1, 2])
      for (const depth of [1, 2, 3])
        it(`${modelWorkers} model worker(s) × ${attentionWorkers} attention worker(s), depth ${depth}`, async () => {
          await withModelWorkers(
            frontEnd,
            storiesDir,
            {
              modelWorkers,
              attentionWorkers,
              pipelineDepth: depth,
              partition: depth === 2 ? "request" : "head",
              transport: "tcp",
              modelPlane: "tcp",
            },
            async (core, ex) => {
              const plane = (core.attention as RemoteAttentionService).sharedPlane();
              assert.ok("targets" in plane && plane.targets.every((t) => t.tcp), "attention over TCP");
              const res = await runToCompletion(core, reqs);
              assert.deepEqual(
                [...res.values()].map((c) => c.tokens),
                expected,
              );
              // The replicas' counters reached the front end's copy (in their frames).
              for (let r = 0; r < modelWorkers; r++)
                assert.ok(
                  Atomics.load(ex.plane.replicaWords(r), RW.slices) > 0,
                  `model worker ${r} ran slices`,
                );
              const net = ex.planeNetInfo();
              assert.ok(net, "the front end's copy is linked over TCP");
              assert.equal(net.malformed, 0);
              assert.ok(net.framesIn >= res.size, "logits came back as frames");
              // The same counters reach the engine's stats (and /metrics).
              const st = core.stats().modelPlane;
              assert.ok(st && st.framesOut > 0 && st.framesIn >= net.framesIn && st.bytesIn > 0);
              assert.equal(core.recoveries, 0, "no model worker was lost on the way");
              assert.ok(
                core.attention.usage().every((u) => u.usedBlocks === 0),
                "no KV left behind",
              );
            },
          );
        });

  it("the engine's stats are read after it closed, as the engine thread posts them last", async () => {
    const core = await buildEngine(frontEnd, backend, {
      model: storiesDir,
      maxTokensPerStep: 16,
      modelWorkers: 1,
      attentionWorkers: 1,
      modelPlane: "tcp",
    });
    let closed = false;
    try {
      await runToCompletion(core, reqs.slice(0, 1));
      await closeCore(core);
      closed = true;
      const st = core.stats().modelPlane;
      assert.ok(st && st.framesIn > 0, "the counters as they stood at close");
    } finally {
      if (!closed) await closeCore(core);
    }
  });

  it("attention workers over shared memory with the plane over TCP (model workers on this host)", async () => {
    await withModelWorkers(
      frontEnd,
      storiesDir,
      { modelWorkers: 2, attentionWorkers: 1, pipelineDepth: 3, transport: "shm", modelPlane: "tcp" },
      async (core) => {
        const res = await runToCompletion(core, reqs);
        assert.deepEqual(
          [...res.values()].map((c) => c.tokens),
          expected,
        );
      },
    );
  });
});

describe("model plane over TCP: faults", async () => {
  const model = await loadModel(storiesDir);
  const plane = {
    modelWorkers: 2,
    attentionWorkers: 1,
    pipelineDepth: 3,
    transport: "tcp",
    modelPlane: "tcp",
  } as const;

  it("a model worker killed mid-run is replaced and linked anew; every request completes with the same tokens", () =>
    killedMidRun(model, plane, (ex) =>
      assert.deepEqual([...ex.planeNetInfo()!.linked].sort(), [1, 2], "both replicas' copies linked"),
    ));

  it("a stopped model worker is declared lost after the timeout, killed and replaced", () =>
    stoppedMidRun(model, plane));

  it("a malformed step fails that step with a clear error (its reason in the failure's frame); the workers go on", () =>
    malformedStep(model, { ...plane, modelWorkers: 1, pipelineDepth: 2 }));

  it("--model-plane needs model workers", async () => {
    await assert.rejects(
      buildEngine(model, backend, { attentionWorkers: 1, modelPlane: "tcp" }),
      /--model-plane needs model workers/,
    );
  });
});
