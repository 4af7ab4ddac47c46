import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type Partition,
  RemoteAttentionService,
  type WorkerEndpoint,
} from "../../src/attention/remote-service.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { AddressedWorker, SpawnedWorker } from "../../src/placement/attention-worker-endpoints.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import type { CoreOptions } from "../../src/placement/options.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { waitUntil } from "../helpers/processes.js";
import { stepLoop } from "./step-loop.js";
import {
  startWorkerProc,
  stopWorkerProc,
  storyRequests,
  TEST_TOKEN,
  type WorkerProc,
} from "./worker-procs.js";

// A SIGKILLed attention worker loses its KV; the engine must rebuild what was lost (from prompt +
// generated tokens) and finish every request with exactly the tokens of an undisturbed colocated
// run, leaving no block behind on any worker or in the model side's mirror.

const backend = nativeBackend();
// Speculative steps too (stories260K is below the size they are on by default for): a worker dies
// with drafts in flight, and their sequences are rebuilt from the tokens kept.
const core: CoreOptions = {
  maxTokensPerStep: 16,
  pipelineDepth: 2,
  speculativeTokens: 3,
  speculativeMaxRunning: 8,
};
const quiet = () => {};
let model: LoadedModel;
let expected: number[][];

before(async () => {
  model = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
  const res = await stepLoop(
    buildColocatedEngine(model, backend, { maxTokensPerStep: 16 }),
    storyRequests(model),
  );
  expected = res.tokens;
});

async function connect(endpoints: WorkerEndpoint[], partition: Partition): Promise<RemoteAttentionService> {
  return RemoteAttentionService.connect(endpoints, {
    partition,
    geometry: resolveSizes(model, core).geometry,
    kvMemory: null,
    microBatches: 2,
  });
}

async function assertNoKvLeft(service: RemoteAttentionService, workers: number): Promise<void> {
  const stats = await service.workerStats();
  assert.equal(stats.filter((s) => s !== null).length, workers, "every worker answers STATS");
  for (const s of stats) assert.equal(s!.usedBlocks, 0, "no KV block left on a worker");
  for (const u of service.usage())
    assert.equal(u.usedBlocks, 0, `no block left in the mirror of ${u.worker}`);
}

describe("SIGKILL of a spawned attention worker mid-generation", () => {
  const cases: { partition: Partition; transport: "shm" | "tcp"; when: "mid-step" | "between steps" }[] = [
    { partition: "head", transport: "shm", when: "mid-step" },
    { partition: "head", transport: "tcp", when: "between steps" },
    { partition: "request", transport: "tcp", when: "mid-step" },
    { partition: "request", transport: "shm", when: "between steps" },
  ];
  for (const c of cases) {
    it(`${c.partition} partition over ${c.transport}, killed ${c.when}: same tokens, new process, no KV left`, {
      timeout: 60_000,
    }, async () => {
      const workers = ["a", "b"].map(
        (n) => new SpawnedWorker(n, { transport: c.transport, kvMemory: 16 << 20, threads: 1, log: quiet }),
      );
      const service = await connect(workers, c.partition);
      try {
        const engine = buildColocatedEngine(model, backend, core, service);
        const victim = workers[1]!;
        const oldPid = victim.pid!;
        const res = await stepLoop(engine, storyRequests(model), async (step) => {
          if (step !== 6) return;
          const gone = new Promise((r) => victim.child!.once("exit", r));
          victim.kill("SIGKILL");
          if (c.when === "between steps") {
            await gone;
            // The channel's close is delivered after the exit: the next step must start after it.
            await waitUntil(
              () => service.aliveWorkers === 1,
              "the service to see the worker's channel close",
            );
          }
        });
        assert.deepEqual(res.errors, []);
        assert.deepEqual(res.tokens, expected);
        assert.ok(engine.recoveries >= 1, "the engine rebuilt lost KV");
        assert.ok(engine.stats().speculation.acceptedTokens > 0, "speculative steps ran");
        const pids = service.workerPids();
        assert.ok(
          pids.every((p) => p.alive),
          "both workers serve again",
        );
        assert.notEqual(pids[1]!.pid, oldPid, "recover() started a new worker process");
        assert.equal(pids[1]!.pid, victim.pid);
        await assertNoKvLeft(service, 2);
      } finally {
        await service.close();
        for (const w of workers) w.kill("SIGKILL");
      }
    });
  }
});

/**
 * An addressed worker that reaches the test's current process for it. A restart listens on a fresh
 * port (port 0) rather than the old one, which another process may have taken in between; the
 * service still only knows the endpoint and must reconnect through it.
 */
function following(name: string, current: () => WorkerProc): WorkerEndpoint {
  return {
    name,
    connect: () => {
      const w = current();
      return new AddressedWorker(name, w.host, w.port, TEST_TOKEN, quiet).connect();
    },
  };
}

describe("an addressed `lamina attention-worker` killed and restarted", () => {
  const procs: (WorkerProc | null)[] = [];
  after(async () => {
    for (const p of procs) await stopWorkerProc(p);
  });

  for (const partition of ["head", "request"] as const) {
    it(`${partition} partition: runs on without it, then it rejoins; same tokens, no KV left`, {
      timeout: 60_000,
    }, async () => {
      const a = await startWorkerProc("127.0.0.1:0");
      let b = await startWorkerProc("127.0.0.1:0");
      procs.push(a, b);
      const endpoints = [following("a", () => a), following("b", () => b)];
      const service = await connect(endpoints, partition);
      service.retryMs = 0;
      let downSteps = 0;
      let rejoinedAt = -1;
      try {
        const engine = buildColocatedEngine(model, backend, core, service);
        const res = await stepLoop(engine, storyRequests(model), async (step) => {
          if (step === 5) {
            await stopWorkerProc(b);
            await waitUntil(
              () => service.aliveWorkers === 1,
              "the service to see the worker's channel close",
            );
          }
          if (step > 5 && rejoinedAt < 0) {
            if (service.aliveWorkers === 1) downSteps++;
            if (step === 9) {
              b = await startWorkerProc("127.0.0.1:0");
              procs.push(b);
              rejoinedAt = step;
            }
          }
        });
        assert.deepEqual(res.errors, []);
        assert.deepEqual(res.tokens, expected);
        assert.ok(downSteps >= 2, `steps ran with one worker down (${downSteps})`);
        assert.ok(rejoinedAt > 0 && res.steps > rejoinedAt + 1, "generation went on after the rejoin");
        const pids = service.workerPids();
        assert.ok(
          pids.every((p) => p.alive),
          "the restarted worker serves again",
        );
        assert.equal(pids[1]!.pid, b.child.pid, "the link is to the restarted process");
        assert.ok(
          service.usage().every((u) => u.totalBlocks > 0),
          "both workers hold a share of the KV after the rejoin",
        );
        await assertNoKvLeft(service, 2);
      } finally {
        await service.close();
      }
    });
  }
});
