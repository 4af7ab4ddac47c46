import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadModel } from "../../src/model/load.js";
import { buildEngine } from "../../src/placement/build.js";
import { createModelStep } from "../../src/runtime/step.js";
import { runToCompletion } from "../helpers/engine-driver.js";
import { backend, colocated, requests, storiesDir, withModelWorkers } from "../helpers/model-workers.js";

describe("model workers: faults", async () => {
  const model = await loadModel(storiesDir);

  for (const transport of ["shm", "tcp"] as const)
    it(`a model worker killed mid-run is replaced; every request completes with the same tokens (${transport})`, async () => {
      const reqs = requests(model, 5, 40);
      const expected = await colocated(model, reqs);
      await withModelWorkers(
        model,
        storiesDir,
        { modelWorkers: 2, attentionWorkers: 1, pipelineDepth: 3, transport },
        async (core, ex) => {
          for (const r of reqs) core.add(r);
          const out = new Map(reqs.map((r) => [r.id, [] as number[]]));
          let steps = 0;
          const victim = ex.pids()[1]!;
          while (core.hasWork) {
            if (++steps === 12) process.kill(victim, "SIGKILL");
            for (const ev of await core.runStep()) {
              assert.equal(ev.error, undefined, `no request sees the loss: ${ev.error}`);
              out.get(ev.requestId)!.push(...ev.tokenIds);
            }
          }
          assert.ok(steps > 12, "the kill happened mid-run");
          assert.deepEqual([...out.values()], expected);
          assert.ok(core.recoveries >= 1, "a recovery ran");
          assert.notEqual(ex.pids()[1], victim, "replaced by a new process");
        },
      );
    });

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

  it("a stopped model worker is declared lost after the timeout, killed and replaced", async () => {
    const reqs = requests(model, 3, 30);
    const expected = await colocated(model, reqs);
    await withModelWorkers(
      model,
      storiesDir,
      { modelWorkers: 2, attentionWorkers: 1, pipelineDepth: 3, attentionTimeoutMs: 1500 },
      async (core, ex) => {
        for (const r of reqs) core.add(r);
        const out = new Map(reqs.map((r) => [r.id, [] as number[]]));
        let steps = 0;
        let victim = 0;
        const t0 = performance.now();
        while (core.hasWork) {
          if (++steps === 8) {
            victim = ex.pids()[0]!;
            process.kill(victim, "SIGSTOP");
          }
          for (const ev of await core.runStep()) {
            assert.equal(ev.error, undefined, `no request sees the stall: ${ev.error}`);
            out.get(ev.requestId)!.push(...ev.tokenIds);
          }
        }
        assert.deepEqual([...out.values()], expected);
        assert.notEqual(ex.pids()[0], victim, "replaced by a new process");
        assert.ok(performance.now() - t0 < 20_000, "the stall cost about the timeout, not the run");
      },
    );
  });

  it("a malformed step fails that step with a clear error, and the workers go on serving", async () => {
    const reqs = requests(model, 2, 10);
    const expected = await colocated(model, reqs);
    await withModelWorkers(
      model,
      storiesDir,
      { modelWorkers: 1, attentionWorkers: 1, pipelineDepth: 2 },
      async (core, ex) => {
        assert.ok(core.attention.reserve(999, 2));
        const step = createModelStep(16, 8, 0);
        step.nTokens = 2;
        step.nSeqs = 1;
        step.nLogits = 1;
        step.seqIds[0] = 999;
        step.seqStart[1] = 2;
        step.positions.set([0, 1]);
        step.tokens.set([1, model.config.vocabSize + 5]); // outside the vocabulary
        step.logitRows[0] = 1;
        const pending = ex.forward(step);
        const drive = ex.drive;
        while (drive.blocked() > 0) drive.pump();
        await assert.rejects(pending, /malformed step: token id/);
        core.attention.release(999);
        const res = await runToCompletion(core, reqs);
        assert.deepEqual(
          [...res.values()].map((c) => c.tokens),
          expected,
        );
      },
    );
  });

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
