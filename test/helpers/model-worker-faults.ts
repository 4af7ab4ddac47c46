import assert from "node:assert/strict";
import type { LoadedModel } from "../../src/model/types.js";
import type { EngineOptions } from "../../src/placement/options.js";
import type { ModelWorkerExecutor } from "../../src/runtime/model-worker-executor.js";
import { createModelStep } from "../../src/runtime/step.js";
import { runToCompletion } from "./engine-driver.js";
import { colocated, requests, storiesDir, withModelWorkers } from "./model-workers.js";

/**
 * The faults every model plane must survive, on stories260K with 2 model workers at depth 3 unless
 * `o` says otherwise: each test asserts the colocated greedy tokens and the recovery.
 */

/** A model worker SIGKILLed mid-run is replaced; every request completes with the same tokens. */
export async function killedMidRun(
  model: LoadedModel,
  o: EngineOptions,
  after?: (ex: ModelWorkerExecutor) => void,
): Promise<void> {
  const reqs = requests(model, 5, 40);
  const expected = await colocated(model, reqs);
  await withModelWorkers(model, storiesDir, o, async (core, ex) => {
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
    after?.(ex);
  });
}

/** A SIGSTOPped model worker is declared lost after the timeout, killed and replaced. */
export async function stoppedMidRun(model: LoadedModel, o: EngineOptions): Promise<void> {
  const reqs = requests(model, 3, 30);
  const expected = await colocated(model, reqs);
  await withModelWorkers(model, storiesDir, { attentionTimeoutMs: 1500, ...o }, async (core, ex) => {
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
  });
}

/** A step with a token outside the vocabulary fails that step with a clear error; the workers go on. */
export async function malformedStep(model: LoadedModel, o: EngineOptions): Promise<void> {
  const reqs = requests(model, 2, 10);
  const expected = await colocated(model, reqs);
  await withModelWorkers(model, storiesDir, o, async (core, ex) => {
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
  });
}
