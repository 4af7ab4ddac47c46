// Spawned attention workers take the kernel thread count they are given, and compute the same tokens.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import type { RemoteAttentionService } from "../../src/attention/remote-service.js";
import { loadModel } from "../../src/model/load.js";
import { buildColocatedEngine, buildEngine } from "../../src/placement/build.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy } from "../helpers/engine-driver.js";
import { stepLoop } from "./step-loop.js";

const backend = nativeBackend();
const model = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
const requests = () =>
  ["Once upon a time", "Tom had a red ball", "The sun"].map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: model.tokenizer.encode(p),
    params: greedy(24, { ignoreEos: true }),
  }));

describe("--attention-worker-threads", { timeout: 60_000 }, () => {
  /** The tokens of `requests()` through one spawned worker, its command line and its OS thread count. */
  async function withWorker(threads?: number) {
    const core = await buildEngine(model, backend, {
      attentionWorkers: 1,
      pipelineDepth: 1,
      ...(threads !== undefined ? { attentionWorkerThreads: threads } : {}),
    });
    try {
      const pid = (core.attention as RemoteAttentionService).workerPids()[0]!.pid;
      const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      const res = await stepLoop(core, requests());
      assert.deepEqual(res.errors, []);
      return { tokens: res.tokens, args, tasks: readdirSync(`/proc/${pid}/task`).length };
    } finally {
      await core.attention.close();
    }
  }

  it("a spawned worker computes with that many kernel threads, and the tokens are the colocated ones", async () => {
    const colocated = await stepLoop(buildColocatedEngine(model, backend), requests());
    const one = await withWorker();
    const two = await withWorker(2);
    assert.deepEqual(two.tokens, colocated.tokens);
    assert.deepEqual(one.tokens, colocated.tokens);
    const flag = two.args.indexOf("--threads");
    assert.ok(flag > 0 && two.args[flag + 1] === "2", two.args.join(" "));
    assert.equal(one.args[one.args.indexOf("--threads") + 1], "1", "the default stays one thread");
    // Each kernel pool (the worker's backend and its data-plane loop's) runs threads − 1 threads of its
    // own beside its caller: one more each with 2 kernel threads.
    assert.equal(
      two.tasks,
      one.tasks + 2,
      `OS threads: ${one.tasks} with 1 kernel thread, ${two.tasks} with 2`,
    );
  });

  it("is refused without spawned attention workers", async () => {
    await assert.rejects(
      buildEngine(model, backend, { attentionWorkerThreads: 2 }),
      /--attention-worker-threads needs --attention-workers N/,
    );
    await assert.rejects(
      buildEngine(model, backend, { attentionWorkers: 1, attentionWorkerThreads: 0 }),
      /--attention-worker-threads/,
    );
  });
});
