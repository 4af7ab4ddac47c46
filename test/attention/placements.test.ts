import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { GenerateRequest } from "../../src/engine/api.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { remoteAttention } from "../helpers/attention-workers.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, logitsAllPositions, runToCompletion } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const backend = nativeBackend();
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-placements-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function requests(model: LoadedModel): GenerateRequest[] {
  const prompts = ["Once upon a time", "The little dog", "Lily and Ben went to the park and"];
  return prompts.map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: model.tokenizer.encode(p),
    params: greedy(24, { ignoreEos: true }),
  }));
}

async function colocated(model: LoadedModel): Promise<number[][]> {
  const core = buildColocatedEngine(model, backend, { maxTokensPerStep: 16 });
  const res = await runToCompletion(core, requests(model));
  return [...res.values()].map((c) => c.tokens);
}

// Every placement runs the same slices; only where attention runs differs. Each must give the
// colocated engine's greedy tokens exactly, and leave no KV block behind on any worker.
const placements: {
  workers: number;
  partition: "head" | "request";
  depth: number;
  transport: "shm" | "tcp";
}[] = [];
for (const workers of [1, 2, 4]) {
  for (const partition of ["head", "request"] as const) {
    for (const depth of [1, 2, 3])
      for (const transport of ["shm", "tcp"] as const)
        placements.push({ workers, partition, depth, transport });
  }
}

for (const source of ["stories260K", "tiny llama-gqa"] as const) {
  describe(`${source}: disaggregated placements equal colocated`, async () => {
    const model =
      source === "stories260K"
        ? await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"))
        : await loadModel(writeTinyModel(path.join(tmp, "gqa"), "llama-gqa").dir);
    const expected = await colocated(model);

    for (const p of placements) {
      if (p.partition === "head" && model.config.numKvHeads % p.workers !== 0) continue;
      it(`${p.workers} worker(s), ${p.partition} partition, depth ${p.depth}, ${p.transport}`, async () => {
        const { service, workers } = await remoteAttention(model, backend, p);
        try {
          // Every worker takes the native data plane: a segment over shm, a socket of its own over TCP.
          assert.notEqual(service.drive, null, "exchange on the native data plane");
          const core = buildColocatedEngine(
            model,
            backend,
            { maxTokensPerStep: 16, pipelineDepth: p.depth },
            service,
          );
          const res = await runToCompletion(core, requests(model));
          assert.deepEqual(
            [...res.values()].map((c) => c.tokens),
            expected,
          );
          const stats = await service.workerStats();
          for (const s of stats) assert.equal(s?.usedBlocks ?? 0, 0, "no KV block left on a worker");
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

    it("logits over a prompt match colocated within 1e-5 relative (early q + merge on the workers)", async () => {
      const tokens = model.tokenizer.encode("Once upon a time there was a big red ball that");
      const local = await logitsAllPositions(model, backend, tokens, 4);
      for (const partition of ["head", "request"] as const) {
        const { service, workers } = await remoteAttention(model, backend, {
          workers: 2,
          partition,
          transport: "shm",
          depth: 1,
          blockSize: 4,
        });
        try {
          const remote = await logitsAllPositions(model, backend, tokens, 4, service);
          for (let i = 0; i < tokens.length; i++) {
            const scale = Math.max(...local[i]!.map(Math.abs));
            for (let j = 0; j < local[i]!.length; j++) {
              assert.ok(
                Math.abs(remote[i]![j]! - local[i]![j]!) <= 1e-5 * scale,
                `${partition}: position ${i} logit ${j}`,
              );
            }
          }
        } finally {
          await service.close();
          for (const w of workers) await w.close();
        }
      }
    });
  });
}
