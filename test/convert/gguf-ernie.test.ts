// ERNIE 4.5 through GGUF: llama.cpp's ernie4_5 stores q/k rows as the checkpoint does, in the
// interleaved RoPE pairs both rotate, so the exported rows are the safetensors' rows byte for byte;
// the file loads back with the same config and tokens. (That llama.cpp computes the same tokens
// from the exported file is in gguf-llamacpp.test.ts, with the other tiny variants.)
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { toFloat32 } from "../../src/model/tensor.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { ggufRoundTrip } from "./gguf-fixtures.js";
import { readGguf } from "./gguf-reader.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-ernie-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("ERNIE 4.5 through GGUF", () => {
  it("writes the checkpoint's q/k rows as stored and loads back with the same config and tokens", async () => {
    const dir = path.join(tmp, "tiny-ernie");
    const { file } = await ggufRoundTrip(dir, "ernie4_5", "ernie4_5");
    const written = writeTinyModel(path.join(tmp, "as-written"), "ernie4_5").weights;
    const g = readGguf(file);
    assert.equal(g.metadata.get("general.architecture"), "ernie4_5");
    assert.equal(g.metadata.get("ernie4_5.attention.key_length"), 32);
    assert.equal(g.tensors.has("output.weight"), false, "tied: no output tensor");
    for (const [gg, hf] of [
      ["blk.1.attn_q.weight", "model.layers.1.self_attn.q_proj.weight"],
      ["blk.1.attn_k.weight", "model.layers.1.self_attn.k_proj.weight"],
    ] as const) {
      const t = g.tensors.get(gg)!;
      assert.equal(t.type, 0, `${gg} is f32 as the checkpoint`);
      const ours = new Float32Array(t.data.slice().buffer);
      assert.deepEqual(ours, toFloat32(written.get(hf)!), gg);
    }
  });
});
