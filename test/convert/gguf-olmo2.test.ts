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
import { loadModel } from "../../src/model/load.js";
import { ggufRoundTrip, minimalMeta, onesF32 } from "./gguf-fixtures.js";
import { readGguf } from "./gguf-reader.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-olmo2-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("OLMo 2 through GGUF", () => {
  it("writes llama.cpp's olmo2 tensors and loads back with the same config and the same tokens", async () => {
    const { file } = await ggufRoundTrip(path.join(tmp, "tiny-olmo2"), "olmo2", "olmo2");
    const names = [...readGguf(file).tensors.keys()].filter((n) => n.startsWith("blk.0."));
    assert.deepEqual(names.filter((n) => n.includes("norm")).sort(), [
      "blk.0.attn_k_norm.weight",
      "blk.0.attn_q_norm.weight",
      "blk.0.post_attention_norm.weight",
      "blk.0.post_ffw_norm.weight",
    ]);
  });

  it("a window (OLMo 3's window layers) is refused on import", async () => {
    const file = path.join(tmp, "olmo3.gguf");
    writeGguf(
      file,
      [...minimalMeta("olmo2"), { key: "olmo2.attention.sliding_window", value: gguf.u32(4096) }],
      [onesF32("token_embd.weight", [4, 8])],
    );
    await assert.rejects(
      loadModel(file),
      /olmo2 with a sliding window \(4096; OLMo 3's window layers\) is not supported/,
    );
  });
});
