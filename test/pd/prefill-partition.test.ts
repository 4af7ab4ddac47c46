// The prefill instance's compute partition from a TTFT target: the fewest prefill threads whose
// measured chunk time, times the chunks of the longest prompt, meets the target.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { loadModel } from "../../src/model/load.js";
import { buildPdEngine } from "../../src/placement/build.js";
import { choosePartition, measurePrefillChunk } from "../../src/placement/prefill-partition.js";
import { nativeBackend } from "../helpers/backends.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { inProcessPrefill } from "./in-process-prefill.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-partition-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("prefill compute partition", () => {
  const timings = [
    { threads: 3, seconds: 0.08 },
    { threads: 1, seconds: 0.2 },
    { threads: 2, seconds: 0.1 },
  ];

  it("takes the fewest prefill threads that meet the target; the executor keeps the rest", () => {
    // 1,000-token prompts in 250-token chunks: 4 chunks, so TTFT 0.8 / 0.4 / 0.32 s.
    const c = choosePartition(timings, 4, 1000, 250, 0.5);
    assert.deepEqual([c.prefillThreads, c.attentionThreads, c.meetsTarget], [2, 2, true]);
    assert.ok(Math.abs(c.predictedTtftS - 0.4) < 1e-12);
    assert.equal(choosePartition(timings, 4, 1000, 250, 1).prefillThreads, 1);
    assert.deepEqual(
      c.timings.map((t) => t.threads),
      [1, 2, 3],
    );
  });

  it("an unreachable target takes the fastest split and says so; the executor keeps a core", () => {
    const c = choosePartition(timings, 3, 1000, 250, 0.1);
    assert.deepEqual([c.prefillThreads, c.attentionThreads, c.meetsTarget], [3, 1, false]);
  });

  it("measures a real chunk per thread count and picks the partition when the engine is built", async () => {
    const model = await loadModel(writeTinyModel(path.join(tmp, "gqa"), "llama-gqa").dir);
    const backend = nativeBackend();
    // The model's whole context (more than one KV block): each run computes it all again.
    const measured = await measurePrefillChunk(model, backend, 1000, 2, 2, 1);
    assert.deepEqual(
      measured.map((t) => t.threads),
      [1, 2],
    );
    assert.ok(measured.every((t) => t.seconds > 0));

    const lines: string[] = [];
    const { attention } = await buildPdEngine(
      model,
      backend,
      { mode: "adrenaline", maxTokensPerStep: 32, maxRunning: 4, prefillTtftMs: 1_000_000 },
      { log: (l) => lines.push(l), prefillOpener: inProcessPrefill(model, backend, 32).opener },
    );
    try {
      // Any speed meets a generous target: one prefill thread, every other core to attention.
      assert.match(lines.join("\n"), /1 prefill thread\(s\), \d+ for the attention executor; predicted TTFT/);
      assert.equal(attention.instances[0]!.attentionThreads, Math.max(1, availableParallelism() - 1));
    } finally {
      await attention.close();
    }
    await assert.rejects(
      buildPdEngine(model, backend, { mode: "pd", prefillTtftMs: 100, prefillThreads: 1 }),
      /--prefill-threads and --prefill-ttft-ms are exclusive/,
    );
  });
});
