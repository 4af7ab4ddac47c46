import assert from "node:assert/strict";
import { fork } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { RemoteAttentionService } from "../../src/attention/remote-service.js";
import { loadModel } from "../../src/model/load.js";
import { MODEL_WORKER_PROTOCOL_VERSION } from "../../src/runtime/model-worker-protocol.js";
import { runToCompletion } from "../helpers/engine-driver.js";
import { colocated, requests, storiesDir, withModelWorkers } from "../helpers/model-workers.js";

describe("model workers: stories260K over every topology equals colocated", async () => {
  const model = await loadModel(storiesDir);
  const reqs = requests(model);
  const expected = await colocated(model, reqs);
  // The front end holds no weights: its model workers load their own.
  const frontEnd = await loadModel(storiesDir, { weights: false });
  for (const transport of ["shm", "tcp"] as const)
    for (const modelWorkers of [1, 2])
      for (const attentionWorkers of [1, 2])
        for (const depth of [1, 2, 3])
          it(`${modelWorkers} model worker(s) × ${attentionWorkers} attention worker(s), depth ${depth}, ${transport}`, async () => {
            await withModelWorkers(
              frontEnd,
              storiesDir,
              {
                modelWorkers,
                attentionWorkers,
                pipelineDepth: depth,
                partition: depth === 2 ? "request" : "head",
                transport,
              },
              async (core, ex) => {
                // The model workers reach the attention workers on the data plane of that transport.
                const plane = (core.attention as RemoteAttentionService).sharedPlane();
                assert.ok("targets" in plane, "a native data plane to every attention worker");
                for (const t of plane.targets) assert.equal(t.tcp !== undefined, transport === "tcp");
                const res = await runToCompletion(core, reqs);
                assert.deepEqual(
                  [...res.values()].map((c) => c.tokens),
                  expected,
                );
                // Every replica ran slices (the rotation spreads each micro-batch over all of them).
                const slices = ex.plane.shape.replicas;
                for (let r = 0; r < slices; r++)
                  assert.ok(Atomics.load(ex.plane.replicaWords(r), 2) > 0, `model worker ${r} ran slices`);
                assert.ok(
                  core.attention.usage().every((u) => u.usedBlocks === 0),
                  "no KV left behind",
                );
              },
            );
          });
});

describe("model workers: control messages", () => {
  it("a malformed message gets an error reply and leaves the worker serving", async () => {
    const cli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
    const child = fork(cli, ["model-worker", "--model", storiesDir], {
      stdio: ["ignore", "ignore", "ignore", "ipc"],
    });
    try {
      const next = () => new Promise<unknown>((resolve) => child.once("message", resolve));
      assert.deepEqual(Object.keys((await next()) as object).sort(), [
        "host",
        "kernels",
        "model",
        "pid",
        "type",
        "v",
      ]);
      for (const bad of [
        { v: MODEL_WORKER_PROTOCOL_VERSION, type: "configure" },
        { v: MODEL_WORKER_PROTOCOL_VERSION - 1, type: "stop" },
        "not an object",
        { v: MODEL_WORKER_PROTOCOL_VERSION, type: "configure", epoch: 0, plane: "/etc/passwd" },
      ]) {
        const reply = next();
        child.send(bad);
        const m = (await reply) as { type: string; message: string };
        assert.equal(m.type, "error");
        assert.match(m.message, /^bad message: /);
      }
      assert.equal(child.exitCode, null, "still running");
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.send({ v: MODEL_WORKER_PROTOCOL_VERSION, type: "stop" });
      assert.equal(await exited, 0);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
