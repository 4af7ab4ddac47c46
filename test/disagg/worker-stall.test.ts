// Liveness: an attention worker that stops answering (SIGSTOP: alive, connected, silent) is
// declared lost within the configured bound, killed, replaced, and the requests complete with
// their undisturbed greedy tokens.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import type { RemoteAttentionService } from "../../src/attention/remote-service.js";
import type { GenerateRequest } from "../../src/engine/api.js";
import { loadModel } from "../../src/model/load.js";
import { buildColocatedEngine, buildEngine } from "../../src/placement/build.js";
import { shmNative } from "../../src/transport/shm-native.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy } from "../helpers/engine-driver.js";
import { stepLoop } from "./step-loop.js";

const backend = nativeBackend();
const model = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));

function requests(): GenerateRequest[] {
  return ["Once upon a time", "The little dog", "Tom"].map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: model.tokenizer.encode(p),
    params: greedy(30, { ignoreEos: true }),
  }));
}

describe("a stalled attention worker", { timeout: 60_000 }, () => {
  for (const transport of ["shm", "tcp"] as const) {
    it(`over ${transport}: declared lost within the bound, replaced, same tokens`, async () => {
      const expected = (
        await stepLoop(buildColocatedEngine(model, backend, { maxTokensPerStep: 16 }), requests())
      ).tokens;
      const core = await buildEngine(model, backend, {
        attentionWorkers: 1,
        transport,
        attentionTimeoutMs: 400,
        maxTokensPerStep: 16,
        pipelineDepth: 2,
      });
      const service = core.attention as RemoteAttentionService;
      let stopped = 0;
      try {
        const t0 = performance.now();
        let stalledAt = 0;
        const res = await stepLoop(core, requests(), (step) => {
          if (step !== 5) return;
          stopped = service.workerPids()[0]!.pid;
          process.kill(stopped, "SIGSTOP");
          stalledAt = performance.now();
        });
        assert.deepEqual(res.errors, []);
        assert.deepEqual(res.tokens, expected);
        assert.ok(core.recoveries >= 1, "the engine recovered");
        const replaced = service.workerPids()[0]!.pid;
        assert.notEqual(replaced, stopped, "a new worker process serves");
        assert.equal(shmNative().pidAlive(stopped), false, "the stalled process was killed");
        // Noticed after the bound, not after the RPC layer's generic minute.
        assert.ok(performance.now() - stalledAt < 20_000, `${performance.now() - t0} ms`);
      } finally {
        if (stopped) {
          try {
            process.kill(stopped, "SIGKILL");
          } catch {
            // already gone
          }
        }
        await core.attention.close();
      }
    });
  }
});
