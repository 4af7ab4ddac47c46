// Granite through GGUF: the multipliers under llama.cpp's granite keys, read back as written, and
// the files llama.cpp's granite would run differently refused by name. (That llama.cpp computes the
// same tokens from the exported file is in gguf-llamacpp.test.ts, with the other tiny variants.)
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

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-granite-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("Granite through GGUF", () => {
  it("writes llama.cpp's granite keys and loads back with the same config and the same tokens", async () => {
    const d = path.join(tmp, "tiny-granite");
    writeTinyModel(d, "granite");
    const model = await loadModel(d);
    const file = `${d}.gguf`;
    assert.equal(modelToGguf(model, file).architecture, "granite");
    const meta = readGguf(file).metadata;
    assert.equal(meta.get("granite.logit_scale"), 8);
    assert.equal(meta.get("granite.attention.scale"), 0.0625);
    assert.equal(meta.get("granite.embedding_scale"), 2);
    assert.equal(meta.get("granite.residual_scale"), 2.5);
    const back = await loadModel(file);
    assert.deepEqual(back.config, model.config);
    const backend = engineBackends()[0]!.backend;
    const ids = model.tokenizer.encode("Hello, world");
    assert.deepEqual(
      await generateAlone(back, backend, ids, 20),
      await generateAlone(model, backend, ids, 20),
    );
  });

  it("a file without the logit scale, with RoPE off, or with negative scales is refused on import", async () => {
    const file = path.join(tmp, "bad-granite.gguf");
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
    const base = [
      { key: "general.architecture", value: gguf.str("granite") },
      { key: "granite.block_count", value: gguf.u32(1) },
      { key: "granite.context_length", value: gguf.u32(16) },
      { key: "granite.embedding_length", value: gguf.u32(8) },
      { key: "granite.feed_forward_length", value: gguf.u32(16) },
      { key: "granite.attention.head_count", value: gguf.u32(2) },
    ];
    const logit = { key: "granite.logit_scale", value: gguf.f32(8) };
    const cases = [
      [base, /missing metadata "granite\.logit_scale"/],
      [
        [...base, { key: "granite.logit_scale", value: gguf.f32(0) }],
        /"granite\.logit_scale" = 0 is not positive/,
      ],
      [
        [...base, logit, { key: "granite.rope.scaling.finetuned", value: gguf.bool(false) }],
        /granite without RoPE/,
      ],
      [
        [...base, logit, { key: "granite.residual_scale", value: gguf.f32(-1) }],
        /"granite\.residual_scale" = -1 is negative/,
      ],
      [
        [...base, logit, { key: "granite.expert_count", value: gguf.u32(4) }],
        /experts in the granite architecture are not supported/,
      ],
    ] as const;
    for (const [kv, why] of cases) {
      writeGguf(file, kv, [embd]);
      await assert.rejects(loadModel(file), why);
    }
  });
});
