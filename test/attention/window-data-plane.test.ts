// Gemma's per-layer attention (window layers among global ones, the query_pre_attn_scalar scale,
// Gemma 2's score soft-cap) on the native data plane: the worker loop is given each layer's
// settings once, and every STEP carries the window layers' own block tables, filled from the
// model side's mirror of the worker's window pool. Every placement must give the colocated
// greedy tokens and logits, with the exchange on the data plane the whole run (no worker lost,
// no fallback to messages), and leave no block behind in either pool.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { GenerateRequest } from "../../src/engine/api.js";
import { loadModel } from "../../src/model/load.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { type InProcessWorker, remoteAttention } from "../helpers/attention-workers.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, logitsAllPositions, runToCompletion } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const backend = nativeBackend();
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-window-data-plane-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Byte-token prompts, long enough that the window layers free blocks (window 5 or 6, blocks of 4). */
const PROMPTS = ["Once upon a time", "The dog", "Lily and Ben went to the park and saw a big tree"].map(
  (p) => [256, ...Buffer.from(p)],
);

function requests(): GenerateRequest[] {
  return PROMPTS.map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: p,
    params: greedy(16 + 4 * i, { ignoreEos: true }),
  }));
}

// Small steps: prompts are prefilled in several chunks while others decode.
const SIZES = { maxTokensPerStep: 8, maxRunning: 4, blockSize: 4 } satisfies EngineOptions;
const tokensOf = (res: Map<string, { tokens: number[] }>) => [...res.values()].map((c) => c.tokens);

/**
 * Each worker served the whole run on one connection whose native loop has not failed, and the
 * loops together ran every layer of some steps (under request partitioning one worker may own
 * no sequence of a short run).
 */
function assertOnDataPlane(workers: InProcessWorker[], numLayers: number): void {
  let steps = 0;
  let layers = 0;
  for (const w of workers) {
    assert.equal(w.sessions.length, 1, `${w.name} was never reconnected (no loss, no fallback)`);
    const info = w.sessions[0]!.dataPlaneInfo();
    assert.ok(info, `${w.name} serves the native data plane`);
    assert.notEqual(info.state, "failed", info.error);
    assert.equal(info.error, "");
    steps += info.steps;
    layers += info.layers;
    assert.ok(
      w.sessions[0]!.cache!.windowAllocator,
      `${w.name} keeps the window layers' KV in a pool of its own`,
    );
  }
  assert.ok(steps > 0 && layers >= steps * numLayers, `the loops ran ${steps} steps, ${layers} layers`);
}

for (const family of ["gemma2", "gemma3"] as const) {
  describe(`tiny ${family} on the native data plane equals colocated`, async () => {
    const model = await loadModel(writeTinyModel(path.join(tmp, family), family).dir);
    const expected = tokensOf(await runToCompletion(buildColocatedEngine(model, backend, SIZES), requests()));

    for (const partition of ["head", "request"] as const)
      for (const depth of [1, 2])
        for (const transport of ["shm", "tcp"] as const) {
          it(`2 workers, ${partition} partition, depth ${depth}, ${transport}`, async () => {
            const o = { workers: 2, partition, depth, transport, ...SIZES };
            const { service, workers } = await remoteAttention(model, backend, o);
            try {
              assert.notEqual(service.drive, null, "exchange on the native data plane");
              const core = buildColocatedEngine(model, backend, { ...SIZES, pipelineDepth: depth }, service);
              assert.deepEqual(tokensOf(await runToCompletion(core, requests())), expected);
              assert.notEqual(service.drive, null, "still on the data plane at the end");
              assertOnDataPlane(workers, model.config.numLayers);
              // STATS is answered after the RELEASEs sent before it: both pools are empty again.
              for (const s of await service.workerStats())
                assert.equal(s?.usedBlocks, 0, "no global block left");
              for (const w of workers) assert.equal(w.sessions[0]!.cache!.windowAllocator!.usedBlocks, 0);
              assert.ok(
                service.usage().every((u) => u.usedBlocks === 0),
                "the model side's mirror agrees",
              );
            } finally {
              await service.close();
              for (const w of workers) await w.close();
            }
          });
        }

    it("logits over a prompt match colocated within 1e-5 relative (early q + merge in the native loop)", async () => {
      const tokens = PROMPTS[2]!;
      const local = await logitsAllPositions(model, backend, tokens, 4);
      for (const [partition, transport] of [
        ["head", "shm"],
        ["request", "shm"],
        ["head", "tcp"],
      ] as const) {
        const { service, workers } = await remoteAttention(model, backend, {
          workers: 2,
          partition,
          transport,
          depth: 1,
          blockSize: 4,
        });
        try {
          const remote = await logitsAllPositions(model, backend, tokens, 4, service);
          assertOnDataPlane(workers, model.config.numLayers);
          for (let i = 0; i < tokens.length; i++) {
            const scale = Math.max(...local[i]!.map(Math.abs));
            for (let j = 0; j < local[i]!.length; j++)
              assert.ok(
                Math.abs(remote[i]![j]! - local[i]![j]!) <= 1e-5 * scale,
                `${partition}, ${transport}: position ${i} logit ${j}`,
              );
          }
        } finally {
          await service.close();
          for (const w of workers) await w.close();
        }
      }
    });
  });
}
