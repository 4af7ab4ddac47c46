// The shared-memory spin budget is a setting of both ends, and what it costs is reported.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import type { RemoteAttentionService } from "../../src/attention/remote-service.js";
import { loadModel } from "../../src/model/load.js";
import { buildEngine } from "../../src/placement/build.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy } from "../helpers/engine-driver.js";
import { stepLoop } from "./step-loop.js";

const backend = nativeBackend();
const model = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));

async function pollingWith(spinMicros: number): Promise<{ polling: number; workerArgs: string[] }> {
  const core = await buildEngine(model, backend, { attentionWorkers: 1, spinMicros, maxTokensPerStep: 16 });
  try {
    const pid = (core.attention as RemoteAttentionService).workerPids()[0]!.pid;
    const workerArgs = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const requests = ["Once upon a time", "Tom"].map((p, i) => ({
      id: `r${i}`,
      promptTokenIds: model.tokenizer.encode(p),
      params: greedy(24, { ignoreEos: true }),
    }));
    const res = await stepLoop(core, requests);
    assert.deepEqual(res.errors, []);
    return { polling: core.stats().timing.polling, workerArgs };
  } finally {
    await core.attention.close();
  }
}

describe("shared-memory spin budget", { timeout: 60_000 }, () => {
  it("reaches the worker process, and the model side's polling time is reported", async () => {
    const spinning = await pollingWith(500);
    const idle = await pollingWith(0);
    const flag = spinning.workerArgs.indexOf("--spin-us");
    assert.ok(flag > 0 && spinning.workerArgs[flag + 1] === "500", spinning.workerArgs.join(" "));
    assert.ok(spinning.polling > 0.001, `polled ${spinning.polling} s with a 500 µs budget`);
    assert.ok(idle.polling < spinning.polling / 5, `polled ${idle.polling} s with no budget`);
  });
});
