// A data-plane wait past its first 20 µs leaves the core to any other runnable thread: with the
// process pinned to one core, a busy thread keeps most of its pace while the engine thread waits
// (a plain spinner would take about half of the core from it for the whole wait).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { DataPlaneLink, type DataPlaneShape } from "../../src/attention/data-plane-link.js";
import { type DataPlaneAddon, dataPlaneAddon } from "../../src/attention/data-plane-native.js";

const found = dataPlaneAddon();
if (typeof found === "string") throw new Error(`the data-plane tests need the native addon: ${found}`);
const addon: DataPlaneAddon = found;

const shape: DataPlaneShape = {
  numTags: 1,
  maxTokens: 1,
  maxSeqs: 1,
  maxBlocksPerSeq: 1,
  qWidth: 8,
  kvWidth: 8,
  numLayers: 1,
};

/** A thread that counts loop rounds; `rate(during)` is its rounds per ms while `during` runs. */
function busyThread(): { rate(during: () => void): Promise<number>; stop(): Promise<number> } {
  const counter = new Int32Array(new SharedArrayBuffer(8));
  const w = new Worker(
    `const { workerData } = require("node:worker_threads");
     const c = new Int32Array(workerData);
     while (Atomics.load(c, 1) === 0) { for (let i = 0; i < 1000; i++); Atomics.add(c, 0, 1); }`,
    { eval: true, workerData: counter.buffer },
  );
  return {
    async rate(during) {
      const n0 = Atomics.load(counter, 0);
      const t0 = performance.now();
      during();
      return (Atomics.load(counter, 0) - n0) / (performance.now() - t0);
    },
    stop() {
      Atomics.store(counter, 1, 1);
      return w.terminate();
    },
  };
}

describe("data-plane waits on a shared core", () => {
  const taskset = spawnSync("taskset", ["-a", "-cp", "0", String(process.pid)], { stdio: "ignore" });
  if (taskset.status !== 0) throw new Error("this test pins its process with taskset (util-linux)");
  const link = DataPlaneLink.create(addon, shape, 1_000_000);
  const busy = busyThread();
  after(async () => {
    await busy.stop();
    link.close();
  });

  it("yield the core to a runnable thread after their first 20 µs", async () => {
    const sleep = new Int32Array(new SharedArrayBuffer(4));
    const ids = Int32Array.of(link.id);
    // Let the thread start and settle.
    await new Promise((r) => setTimeout(r, 100));
    const ratios: number[] = [];
    for (let round = 0; round < 3; round++) {
      // Alone on the core: this thread sleeps.
      const alone = await busy.rate(() => Atomics.wait(sleep, 0, 0, 300));
      // Beside a wait that spins (its budget is 1 s, capped by its 300 ms timeout) with no reply coming.
      const beside = await busy.rate(() => assert.equal(addon.dpWait(ids, 1, 300), -1));
      ratios.push(beside / alone);
    }
    ratios.sort((a, b) => a - b);
    // A wait that held the core would leave the thread about half of it.
    assert.ok(
      ratios[1]! > 0.75,
      `the busy thread kept ${ratios.map((r) => r.toFixed(2)).join(", ")} of its pace`,
    );
  });
});
