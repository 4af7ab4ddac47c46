// A model mixing window and global layers (tiny Gemma 2: window 6 on layers 0 and 2) frees its
// window layers' KV blocks while it generates, in-process and on an attention worker, and the
// capacity the engine reports counts the blocks that frees.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { KvAttention } from "../../src/attention/kv-attention.js";
import type { LocalAttentionService } from "../../src/attention/local-service.js";
import { windowBlocksPerSeq } from "../../src/attention/window-blocks.js";
import type { EngineCore } from "../../src/engine/engine-core.js";
import { loadModel } from "../../src/model/load.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import { remoteAttention } from "../helpers/attention-workers.js";
import { nativeBackend } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const backend = nativeBackend();
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-window-kv-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const SIZES: EngineOptions = { maxTokensPerStep: 8, maxRunning: 2, blockSize: 4 };
const prompt = [256, ...Buffer.from("Lily and Ben went to the park")];
const GENERATE = 40;

/**
 * Runs one request to the end, recording the most blocks each pool of `kv()` held after a step;
 * `settle` (a worker) waits until the worker has applied what was sent before it: on the native
 * data plane a step does not wait for the RESERVEs, which only keep the worker's own accounting.
 */
async function peaks(core: EngineCore, kv: () => KvAttention, settle?: () => Promise<unknown>) {
  core.add({ id: "r", promptTokenIds: prompt, params: greedy(GENERATE, { ignoreEos: true }) });
  let global = 0;
  let window = 0;
  while (core.hasWork) {
    await core.runStep();
    await settle?.();
    const k = kv();
    global = Math.max(global, k.allocator.usedBlocks);
    window = Math.max(window, k.windowAllocator!.usedBlocks);
  }
  return { global, window, end: () => [kv().allocator.usedBlocks, kv().windowAllocator!.usedBlocks] };
}

/**
 * The global pool's peak covers the sequence: seen between steps, the step that finishes a request
 * releases it in-process (so the peak seen covers all but the last two tokens), while a worker
 * releases at the next step (all but the last, whose KV is never written).
 */
function assertCoversAll(peak: number, total: number): void {
  assert.ok(
    peak >= Math.ceil((total - 2) / 4) && peak <= Math.ceil((total - 1) / 4),
    `global pool peak ${peak}`,
  );
}

describe("tiny Gemma 2's window layers free their KV as a sequence grows", async () => {
  const model = await loadModel(writeTinyModel(path.join(tmp, "gemma2"), "gemma2").dir);
  const total = prompt.length + GENERATE;
  const geometry = resolveSizes(model, SIZES).geometry;

  it("in-process: the global pool holds every position, the window pool only the window", async () => {
    const core = buildColocatedEngine(model, backend, SIZES);
    const local = core.attention as LocalAttentionService;
    const p = await peaks(core, () => local.kv);
    assertCoversAll(p.global, total);
    assert.ok(p.window <= windowBlocksPerSeq(geometry), `window pool peak ${p.window}`);
    assert.ok(p.window < p.global / 3, `window pool peak ${p.window} against ${p.global}`);
    assert.deepEqual(p.end(), [0, 0]);
  });

  it("on an attention worker (head partition, shm), as the worker accounts it", async () => {
    const { service, workers } = await remoteAttention(model, backend, {
      workers: 1,
      partition: "head",
      depth: 1,
      transport: "shm",
      blockSize: 4,
      maxTokensPerStep: 8,
      maxRunning: 2,
    });
    try {
      const core = buildColocatedEngine(model, backend, SIZES, service);
      assert.notEqual(service.drive, null, "on the native data plane");
      const p = await peaks(
        core,
        () => workers[0]!.sessions[0]!.cache!,
        () => service.workerStats(),
      );
      assertCoversAll(p.global, total);
      assert.ok(p.window <= windowBlocksPerSeq(geometry), `window pool peak ${p.window}`);
      assert.ok(p.window < p.global / 3, `window pool peak ${p.window} against ${p.global}`);
      // STATS is answered after the RELEASE sent before it: both pools are empty again.
      await service.workerStats();
      assert.deepEqual(p.end(), [0, 0]);
    } finally {
      await service.close();
      for (const w of workers) await w.close();
    }
  });

  it("the capacity reported counts the freed blocks: more global blocks in the same budget", () => {
    const sizes = resolveSizes(model, { ...SIZES, kvMemory: 4 << 20 });
    const core = buildColocatedEngine(model, backend, { ...SIZES, kvMemory: 4 << 20 });
    const total = core.attention.usage()[0]!.totalBlocks;
    assert.equal(total, sizes.localBlocks);
    assert.ok(
      total > sizes.numBlocks,
      `${total} global blocks against ${sizes.numBlocks} with one shared table`,
    );
  });
});

describe("window layers' own pool on an attention worker, while the output reserve holds KV ahead", async () => {
  // The global pool's reservation runs ahead of the step (the output reserve) while the window
  // pool follows the step's end: a step inside the first can still need a window block, which
  // the worker (and on the data plane, its step's tables) must be told of.
  for (const variant of ["gemma2", "gpt-oss"] as const)
    for (const transport of ["shm", "tcp"] as const)
      it(`${variant}, ${transport === "shm" ? "native data plane" : "messages"}: in-process logprobs`, async () => {
        const model = await loadModel(writeTinyModel(path.join(tmp, `${variant}-${transport}`), variant).dir);
        // f32 KV: a worker splits a step's attention into the keys cached before it and the step's own
        // (merged by their log-sum-exp), which rounds apart from one pass by about 1e-7 on a 16-bit
        // cache; this model's bf16 products round their activations to bf16, which can turn that
        // into 1e-3 in a logprob (Gemma 2's random weights: 1.7e-3 with f16 KV, the same in-process
        // with the split; f32 KV gives the same values bit for bit).
        const o = { blockSize: 4, maxTokensPerStep: 64, maxRunning: 2, kvDtype: "f32" as const };
        const ask = () => ({
          id: "r",
          promptTokenIds: prompt,
          params: greedy(GENERATE, { ignoreEos: true, logprobs: 0 }),
        });
        const want = (await runToCompletion(buildColocatedEngine(model, backend, o), [ask()])).get("r")!;
        const { service, workers } = await remoteAttention(model, backend, {
          workers: 1,
          partition: "head",
          depth: 1,
          transport,
          ...o,
          ...(transport === "tcp" ? { dataPlane: false } : {}),
        });
        try {
          const core = buildColocatedEngine(model, backend, { ...o, pipelineDepth: 1 }, service);
          const got = (await runToCompletion(core, [ask()])).get("r")!;
          assert.deepEqual(got.tokens, want.tokens);
          for (let i = 0; i < want.logprobs.length; i++)
            assert.ok(
              Math.abs(got.logprobs[i]!.logprob - want.logprobs[i]!.logprob) < 1e-4,
              `token ${i}: ${got.logprobs[i]!.logprob} against ${want.logprobs[i]!.logprob}`,
            );
        } finally {
          await service.close();
          for (const w of workers) await w.close();
        }
      });
});
