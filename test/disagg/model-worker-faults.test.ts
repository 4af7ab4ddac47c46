import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadModel } from "../../src/model/load.js";
import { buildEngine } from "../../src/placement/build.js";
import { runToCompletion } from "../helpers/engine-driver.js";
import { killedMidRun, malformedStep, stoppedMidRun } from "../helpers/model-worker-faults.js";
import { backend, colocated, requests, storiesDir, withModelWorkers } from "../helpers/model-workers.js";

describe("model workers: faults", async () => {
  const model = await loadModel(storiesDir);

  for (const transport of ["shm", "tcp"] as const)
    it(`a model worker killed mid-run is replaced; every request completes with the same tokens (${transport})`, () =>
      killedMidRun(model, { modelWorkers: 2, attentionWorkers: 1, pipelineDepth: 3, transport }));

  it("an idle spell longer than the timeout is not a stall: the next request runs on the same workers", async () => {
    const reqs = requests(model, 2, 6);
    const expected = await colocated(model, reqs);
    await withModelWorkers(
      model,
      storiesDir,
      { modelWorkers: 1, attentionWorkers: 1, pipelineDepth: 2, attentionTimeoutMs: 300 },
      async (core, ex) => {
        const pids = ex.pids();
        for (const r of reqs) {
          // Idle past the timeout (a server between requests), then one request.
          await new Promise((resolve) => setTimeout(resolve, 700));
          const got = await runToCompletion(core, [r]);
          assert.deepEqual(got.get(r.id)!.tokens, expected[reqs.indexOf(r)]);
        }
        assert.equal(core.recoveries, 0, "no model worker was declared lost");
        assert.deepEqual(ex.pids(), pids, "the same processes serve");
      },
    );
  });

  it("a stopped model worker is declared lost after the timeout, killed and replaced", () =>
    stoppedMidRun(model, { modelWorkers: 2, attentionWorkers: 1, pipelineDepth: 3 }));

  it("a malformed step fails that step with a clear error, and the workers go on serving", () =>
    malformedStep(model, { modelWorkers: 1, attentionWorkers: 1, pipelineDepth: 2 }));

  it("placement flags: model workers need attention workers, and colocated mode", async () => {
    await assert.rejects(
      buildEngine(model, backend, { modelWorkers: 1 }),
      /model workers need attention workers \(--attention-workers N or --attention-worker-addrs\)/,
    );
    await assert.rejects(
      buildEngine(model, backend, { modelWorkers: 1, attentionWorkers: 1, mode: "pd" }),
      /does not combine/,
    );
  });
});
