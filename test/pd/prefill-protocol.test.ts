import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { KvAttention } from "../../src/attention/kv-attention.js";
import { RemoteAttentionService } from "../../src/attention/remote-service.js";
import { loadModel } from "../../src/model/load.js";
import { createPrefillBatch, PrefillLink } from "../../src/pd/prefill-link.js";
import { PrefillFlag } from "../../src/pd/protocol.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import { nativeBackend } from "../helpers/backends.js";
import { logitsAllPositions } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { inProcessPrefill } from "./in-process-prefill.js";

describe("prefill protocol", async () => {
  const tmp = mkdtempSync(path.join(tmpdir(), "lamina-pd-proto-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const backend = nativeBackend();
  const model = await loadModel(writeTinyModel(path.join(tmp, "mha"), "llama-mha").dir);
  const sizes = resolveSizes(model, { maxTokensPerStep: 16, maxRunning: 4, blockSize: 4, kvBlocks: 32 });

  async function connect() {
    const local = new KvAttention(backend, sizes.geometry, sizes.numBlocks);
    const { opener, servers } = inProcessPrefill(model, backend, 16);
    const link = new PrefillLink("p0", opener(0).open, local);
    const remote = await RemoteAttentionService.connect([link.endpoint], {
      partition: "request",
      geometry: sizes.geometry,
      kvMemory: null,
      microBatches: 1,
    });
    return { local, link, remote, servers };
  }

  function batch(seqId: number, tokens: number[], flags: number) {
    const b = createPrefillBatch(16, 4);
    b.nSeqs = 1;
    b.nTokens = tokens.length;
    b.seqIds[0] = seqId;
    b.seqStart[1] = tokens.length;
    b.flags[0] = flags;
    tokens.forEach((t, i) => {
      b.tokens[i] = t;
      b.positions[i] = i;
    });
    return b;
  }

  it("returns the last position's logits and hands the prompt's KV over (not kept)", async () => {
    const { local, link, remote, servers } = await connect();
    try {
      const tokens = [256, 72, 101, 108, 108, 111];
      assert.ok(remote.reserve(5, tokens.length));
      assert.ok(local.allocator.reserve(5, tokens.length));
      const logits = await link.prefill(batch(5, tokens, PrefillFlag.LOGITS), model.config.vocabSize);
      const expected = (await logitsAllPositions(model, backend, tokens, 4)).at(-1)!;
      assert.equal(logits.length, model.config.vocabSize);
      for (let i = 0; i < logits.length; i++)
        assert.ok(Math.abs(logits[i]! - expected[i]!) < 1e-4, `logit ${i}`);
      assert.equal(link.importedTokens, tokens.length, "every position's KV arrived");
      // The imported KV equals the prefill instance's own copy, position by position, every layer.
      const g = sizes.geometry;
      const w = g.numKvHeads * g.headDim;
      const theirs = servers[0]!.session.cache!;
      const slot = (kv: KvAttention, p: number) =>
        kv.allocator.table(5)![(p / g.blockSize) | 0]! * g.blockSize + (p % g.blockSize);
      for (let l = 0; l < g.numLayers; l++) {
        for (const part of ["k", "v"] as const) {
          const a = local.caches[l]![part] as Float32Array;
          const b = theirs.caches[l]![part] as Float32Array;
          for (let p = 0; p < tokens.length; p++) {
            const x = a.subarray(slot(local, p) * w, (slot(local, p) + 1) * w);
            const y = b.subarray(slot(theirs, p) * w, (slot(theirs, p) + 1) * w);
            assert.ok(x.some((e) => e !== 0));
            assert.deepEqual(x, y, `layer ${l} ${part} position ${p}`);
          }
        }
      }
    } finally {
      await remote.close();
    }
  });

  it("answers bad PREFILLs with an error and keeps serving", async () => {
    const { link, remote } = await connect();
    try {
      const V = model.config.vocabSize;
      await assert.rejects(link.prefill(batch(9, [1, 2, 3], PrefillFlag.LOGITS), V), /no KV reserved/);
      assert.ok(remote.reserve(9, 3));
      await assert.rejects(
        link.prefill(batch(9, [1, 9999, 3], PrefillFlag.LOGITS), V),
        /outside the vocabulary/,
      );
      const ok = await link.prefill(batch(9, [1, 2, 3], PrefillFlag.LOGITS | PrefillFlag.KEEP), V);
      assert.equal(ok.length, V);
      assert.equal(link.importedTokens, 0, "a kept request's KV stays on the prefill instance");
      const [stats] = await remote.workerStats();
      assert.equal(stats?.usedBlocks, 1);
    } finally {
      await remote.close();
    }
  });
});
