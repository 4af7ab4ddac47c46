// OLMo 2 through GGUF: the post-block norms under llama.cpp's names (post_attention_norm,
// post_ffw_norm), whole-projection q/k norms, q/k rows as stored (rotate-half RoPE), read back as
// written; OLMo 3's window layers refused on import. (That llama.cpp computes the same tokens from
// the exported file is in gguf-llamacpp.test.ts, with the other tiny variants.)
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { gguf, writeGguf } from "../../src/convert/gguf-writer.js";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { loadModel } from "../../src/model/load.js";
import { engineBackends } from "../helpers/backends.js";
import { generateAlone } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { readGguf } from "./gguf-reader.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-olmo2-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("OLMo 2 through GGUF", () => {
  it("writes llama.cpp's olmo2 tensors and loads back with the same config and the same tokens", async () => {
    const d = path.join(tmp, "tiny-olmo2");
    writeTinyModel(d, "olmo2");
    const model = await loadModel(d);
    const file = `${d}.gguf`;
    assert.equal(modelToGguf(model, file).architecture, "olmo2");
    const names = [...readGguf(file).tensors.keys()].filter((n) => n.startsWith("blk.0."));
    assert.deepEqual(names.filter((n) => n.includes("norm")).sort(), [
      "blk.0.attn_k_norm.weight",
      "blk.0.attn_q_norm.weight",
      "blk.0.post_attention_norm.weight",
      "blk.0.post_ffw_norm.weight",
    ]);
    const back = await loadModel(file);
    assert.deepEqual(back.config, model.config);
    const backend = engineBackends()[0]!.backend;
    const ids = model.tokenizer.encode("Hello, world");
    assert.deepEqual(
      await generateAlone(back, backend, ids, 20),
      await generateAlone(model, backend, ids, 20),
    );
  });

  it("a window (OLMo 3's window layers) is refused on import", async () => {
    const file = path.join(tmp, "olmo3.gguf");
    const data = new Float32Array(32).fill(1);
    const embd = {
      name: "token_embd.weight",
      type: "f32" as const,
      shape: [4, 8],
      byteLength: data.byteLength,
      *chunks() {
        yield new Uint8Array(data.buffer);
      },
    };
    writeGguf(
      file,
      [
        { key: "general.architecture", value: gguf.str("olmo2") },
        { key: "olmo2.block_count", value: gguf.u32(1) },
        { key: "olmo2.context_length", value: gguf.u32(16) },
        { key: "olmo2.embedding_length", value: gguf.u32(8) },
        { key: "olmo2.feed_forward_length", value: gguf.u32(16) },
        { key: "olmo2.attention.head_count", value: gguf.u32(2) },
        { key: "olmo2.attention.sliding_window", value: gguf.u32(4096) },
      ],
      [embd],
    );
    await assert.rejects(
      loadModel(file),
      /olmo2 with a sliding window \(4096; OLMo 3's window layers\) is not supported/,
    );
  });
});
