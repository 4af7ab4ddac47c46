// A channel may hold a message unsent (a full socket or ring) until after the sender has built
// the next one; the Channel contract says its memory must stay untouched until then. These runs
// put a delaying channel between the engine and its attention workers, so every message is
// encoded only after later ones were queued, with two and three micro-batches in flight.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { RemoteAttentionService, type WorkerEndpoint } from "../../src/attention/remote-service.js";
import { AttentionWorkerSession } from "../../src/attention/worker-session.js";
import type { GenerateRequest } from "../../src/engine/api.js";
import { loadModel } from "../../src/model/load.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import type { Channel } from "../../src/transport/channel.js";
import type { Message } from "../../src/transport/message.js";
import { createShmChannelPair } from "../../src/transport/shm-channel.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const backend = nativeBackend();
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-held-sends-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * Sends on `inner` only after a macrotask, in order: what the caller passed is read then, as a
 * channel under backpressure reads it. Everything else passes through.
 */
function holdingChannel(inner: Channel): Channel {
  let chain = Promise.resolve();
  return {
    get description() {
      return `held ${inner.description}`;
    },
    get closed() {
      return inner.closed;
    },
    send(msg: Message): Promise<void> {
      chain = chain.then(() => new Promise<void>((r) => setImmediate(r))).then(() => inner.send(msg));
      return chain;
    },
    onMessage: (h) => inner.onMessage(h),
    onClose: (h) => inner.onClose(h),
    close: (reason) => inner.close(reason),
  };
}

/** An in-process attention worker whose both directions hold their sends. */
class HeldWorker implements WorkerEndpoint {
  constructor(readonly name: string) {}
  async connect(): Promise<Channel> {
    const [engineSide, workerSide] = createShmChannelPair();
    new AttentionWorkerSession(holdingChannel(workerSide), backend, { kvMemory: 64 << 20, log: () => {} });
    return holdingChannel(engineSide);
  }
}

function requests(): GenerateRequest[] {
  // Prompts of different lengths, so micro-batches differ in rows and sequences.
  return [40, 7, 23, 61, 3, 18].map((n, i) => ({
    id: `r${i}`,
    promptTokenIds: Array.from({ length: n }, (_, j) => ((j * 7 + i * 13) % 250) + 1),
    params: greedy(12, { ignoreEos: true }),
  }));
}

describe("micro-batches in flight over channels that hold their sends", async () => {
  const model = await loadModel(writeTinyModel(path.join(tmp, "gqa"), "llama-gqa").dir);
  const colocated = await runToCompletion(
    buildColocatedEngine(model, backend, { maxTokensPerStep: 32, maxRunning: 4 }),
    requests(),
  );
  const expected = [...colocated.values()].map((c) => c.tokens);

  for (const depth of [2, 3]) {
    for (const partition of ["head", "request"] as const) {
      it(`depth ${depth}, ${partition} partition, 2 workers: the colocated tokens, no KV left`, async () => {
        const service = await RemoteAttentionService.connect([new HeldWorker("a"), new HeldWorker("b")], {
          partition,
          geometry: resolveSizes(model, {}).geometry,
          kvMemory: null,
          microBatches: depth,
        });
        try {
          const core = buildColocatedEngine(
            model,
            backend,
            { maxTokensPerStep: 32, maxRunning: 4, pipelineDepth: depth },
            service,
          );
          const res = await runToCompletion(core, requests());
          assert.deepEqual(
            [...res.values()].map((c) => c.tokens),
            expected,
          );
          for (const s of await service.workerStats()) assert.equal(s?.usedBlocks ?? 0, 0);
        } finally {
          await service.close();
        }
      });
    }
  }
});
