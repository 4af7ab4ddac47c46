// Recovery survives faults during itself: a replacement that dies in its handshake, the survivor
// lost while the first loss is being repaired, every worker gone for a while. Faults are injected
// at exact protocol moments (not timers), over real shared-memory channels to in-process workers.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import {
  type Partition,
  RemoteAttentionService,
  type WorkerEndpoint,
} from "../../src/attention/remote-service.js";
import type { GenerateRequest } from "../../src/engine/api.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import type { Channel } from "../../src/transport/channel.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { InProcessWorker } from "../helpers/attention-workers.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy } from "../helpers/engine-driver.js";
import { stepLoop } from "./step-loop.js";

const backend = nativeBackend();
const model: LoadedModel = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
const SIZES = { maxTokensPerStep: 16, pipelineDepth: 2 };

function requests(): GenerateRequest[] {
  const prompts = ["Once upon a time", "The little dog", "Lily and Ben went to the park and", "Tom"];
  return prompts.map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: model.tokenizer.encode(p),
    params: greedy(40, { ignoreEos: true }),
  }));
}

const expected = (await stepLoop(buildColocatedEngine(model, backend, { maxTokensPerStep: 16 }), requests()))
  .tokens;

/**
 * An attention worker whose connections can be cut at chosen moments: `kill()` closes the current
 * one (as a process death does), `onConnect` runs on each new connection and may cut it at once
 * (a replacement that dies in its handshake), and `down` refuses new connections.
 */
class FaultyWorker implements WorkerEndpoint {
  readonly inner: InProcessWorker;
  channel: Channel | null = null;
  connects = 0;
  down = false;
  onConnect: (n: number, ch: Channel) => void = () => {};

  constructor(readonly name: string) {
    this.inner = new InProcessWorker(name, backend, "shm");
  }

  async connect(): Promise<Channel> {
    if (this.down) throw new Error(`${this.name} refused the connection (injected)`);
    const ch = await this.inner.connect();
    this.channel = ch;
    this.onConnect(++this.connects, ch);
    return ch;
  }

  kill(reason = "killed (injected)"): void {
    void this.channel?.close(reason);
  }
}

async function setup(partition: Partition) {
  const workers = [new FaultyWorker("w0"), new FaultyWorker("w1")];
  const service = await RemoteAttentionService.connect(workers, {
    partition,
    geometry: resolveSizes(model, SIZES).geometry,
    kvMemory: null,
    microBatches: SIZES.pipelineDepth,
  });
  service.retryMs = 0;
  const core = buildColocatedEngine(model, backend, SIZES, service);
  return { workers, service, core };
}

async function usedOnWorkers(service: RemoteAttentionService): Promise<number> {
  let used = 0;
  for (const s of await service.workerStats()) used += s?.usedBlocks ?? 0;
  return used;
}

for (const partition of ["head", "request"] as const) {
  describe(`recovery under a second fault (${partition} partition)`, { timeout: 60_000 }, () => {
    it("a replacement that dies in its handshake, and the survivor lost meanwhile: same tokens", async () => {
      const { workers, service, core } = await setup(partition);
      const [a, b] = workers as [FaultyWorker, FaultyWorker];
      // A's first replacement dies during CONFIGURE; as it does, B is lost too.
      a.onConnect = (n, ch) => {
        if (n !== 2) return;
        b.kill();
        queueMicrotask(() => void ch.close("replacement died in its handshake (injected)"));
      };
      try {
        const res = await stepLoop(core, requests(), (step) => {
          if (step === 6) a.kill();
        });
        assert.deepEqual(res.errors, []);
        assert.deepEqual(res.tokens, expected);
        assert.ok(a.connects >= 3 && b.connects >= 2, `reconnected (a ${a.connects}, b ${b.connects})`);
        assert.ok(core.recoveries >= 1);
        assert.equal(await usedOnWorkers(service), 0, "no KV block left on a worker");
      } finally {
        await service.close();
      }
    });

    it("every worker lost with none coming back: requests fail with a clear error within the bound, then serve again", async () => {
      const { workers, service, core } = await setup(partition);
      service.recoverTimeoutMs = 300;
      try {
        const res = await stepLoop(core, requests(), (step) => {
          if (step !== 4) return;
          for (const w of workers) {
            w.down = true;
            w.kill();
          }
        });
        assert.equal(res.errors.length, requests().length);
        assert.equal(
          res.unavailable,
          requests().length,
          "failures are the server's state (HTTP 503), not the requests'",
        );
        for (const e of res.errors)
          assert.match(e, /attention unavailable: no attention capacity after \d+ recovery attempt/);
        assert.match(res.errors[0]!, /refused the connection/);
        // Unready, with the reason, and still trying in the background while idle.
        assert.equal(core.readiness.ready, false);
        assert.match(core.readiness.reason ?? "", /no attention capacity.*refused the connection/);
        assert.equal(core.wantsRetry(), true, "an engine without capacity keeps looking for it");
        // The workers come back: the engine takes new requests and serves them in full.
        for (const w of workers) w.down = false;
        const again = await stepLoop(core, requests().slice(0, 2));
        assert.deepEqual(again.errors, []);
        assert.deepEqual(again.tokens, expected.slice(0, 2));
        assert.deepEqual(core.readiness, { ready: true });
        assert.equal(await usedOnWorkers(service), 0);
      } finally {
        await service.close();
      }
    });
  });
}
