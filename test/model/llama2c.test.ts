import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { loadHfConfig } from "../../src/model/hf-config.js";
import { loadHfWeights } from "../../src/model/hf-weights.js";
import { readLlama2cCheckpoint } from "../../src/model/llama2c-checkpoint.js";
import { deinterleaveRows } from "../../src/model/qk-row-order.js";
import { sharedDataPath } from "../../src/util/shared-data.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-llama2c-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("llama2.c checkpoints", () => {
  test("stories260K.bin gives exactly the tensors and config of its Hugging Face conversion", () => {
    const bin = readLlama2cCheckpoint(sharedDataPath("models", "stories260K", "stories260K.bin"));
    const hfDir = sharedDataPath("models", "stories260K", "hf");
    const hfConfig = loadHfConfig(path.join(hfDir, "config.json"));
    assert.deepEqual(bin.config, hfConfig);
    const hf = loadHfWeights(hfDir, hfConfig).weights;
    assert.equal(bin.weights.size, hf.size);
    assert.equal(bin.weights.size, 1 + 5 * 9 + 1); // embeddings, 9 per layer, final norm; lm_head tied
    for (const [name, t] of hf) {
      const b = bin.weights.get(name);
      assert.ok(b, `missing ${name}`);
      assert.equal(b.dtype, "f32");
      assert.deepEqual(b.shape, t.shape, name);
      assert.ok(b.data.buffer instanceof SharedArrayBuffer);
      // Bitwise equality: the permutation only moves rows, never changes a value.
      const bits = (d: ArrayBufferView) => new Uint32Array(d.buffer, d.byteOffset, d.byteLength / 4);
      assert.deepEqual(bits(b.data), bits(t.data), name);
    }
  });

  test("the q/k permutation moves pair members to the two halves of each head", () => {
    // 2 heads of size 4, one column: rows [a0 a1 a2 a3 | b0 b1 b2 b3] → [a0 a2 a1 a3 | b0 b2 b1 b3]
    const src = Float32Array.from([0, 1, 2, 3, 10, 11, 12, 13]);
    const dst = new Float32Array(deinterleaveRows(new Uint8Array(src.buffer), 2, 4).slice().buffer);
    assert.deepEqual(Array.from(dst), [0, 2, 1, 3, 10, 12, 11, 13]);
  });

  test("an unshared classifier becomes lm_head.weight", () => {
    const src = readFileSync(sharedDataPath("models", "stories260K", "stories260K.bin"));
    const header = new Int32Array(src.buffer.slice(src.byteOffset, src.byteOffset + 28));
    header[5] = -header[5]!;
    const wcls = new Float32Array(512 * 64).map((_, i) => i * 0.5);
    const file = path.join(tmp, "unshared.bin");
    writeFileSync(
      file,
      Buffer.concat([Buffer.from(header.buffer), src.subarray(28), Buffer.from(wcls.buffer)]),
    );
    const ckpt = readLlama2cCheckpoint(file);
    assert.equal(ckpt.config.tieWordEmbeddings, false);
    assert.equal(ckpt.config.vocabSize, 512);
    const lm = ckpt.weights.get("lm_head.weight");
    assert.ok(lm);
    assert.deepEqual(lm.shape, [512, 64]);
    assert.deepEqual(lm.data, wcls);
  });

  test("a truncated checkpoint names the tensor it cuts into", () => {
    const src = readFileSync(sharedDataPath("models", "stories260K", "stories260K.bin"));
    const file = path.join(tmp, "truncated.bin");
    // Cut inside layer 2 of wq: header + embeddings + rms_att + 2.5 layers of wq.
    const cut = 28 + (512 * 64 + 5 * 64 + 2.5 * 64 * 64) * 4;
    writeFileSync(file, src.subarray(0, cut));
    assert.throws(
      () => readLlama2cCheckpoint(file),
      (e: Error) =>
        e.message.includes(file) &&
        e.message.includes("truncated") &&
        e.message.includes("wq of layer 2") &&
        e.message.includes("model.layers.2.self_attn.q_proj.weight"),
    );
  });

  test("a bad header or a file with extra bytes is refused with the file named", () => {
    const src = path.join(sharedDataPath("models", "stories260K"), "stories260K.bin");
    const extra = path.join(tmp, "extra.bin");
    copyFileSync(src, extra);
    writeFileSync(extra, Buffer.alloc(16), { flag: "a" });
    assert.throws(() => readLlama2cCheckpoint(extra), /extra\.bin: 16 bytes beyond/);

    const bad = path.join(tmp, "bad-header.bin");
    writeFileSync(bad, Buffer.from(Int32Array.from([64, 172, 5, 7, 4, 512, 512]).buffer));
    assert.throws(
      () => readLlama2cCheckpoint(bad),
      /bad-header\.bin: not a valid llama2\.c checkpoint header/,
    );

    const tiny = path.join(tmp, "tiny.bin");
    writeFileSync(tiny, Buffer.alloc(10));
    assert.throws(() => readLlama2cCheckpoint(tiny), /tiny\.bin: only 10 bytes/);
  });
});
