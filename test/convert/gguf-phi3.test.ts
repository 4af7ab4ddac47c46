// Phi-3 through GGUF: q/k/v fused as attn_qkv and gate/up as ffn_up, as llama.cpp's phi3 reads
// them; llama.cpp continues greedily as we do and our loader gives back the same model. Also the
// cause of llama.cpp's `_Map_base::at` on such files: it looks up "<s>", "</s>", "<unk>" and
// "<|endoftext|>" whenever general.name contains "phi3", so the writer leaves such a name out
// when the vocabulary lacks one of them.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Llama } from "node-llama-cpp";
import { gguf, writeGguf } from "../../src/convert/gguf-writer.js";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { loadModel } from "../../src/model/load.js";
import { type Tensor, toFloat32 } from "../../src/model/tensor.js";
import type { LoadedModel } from "../../src/model/types.js";
import { engineBackends } from "../helpers/backends.js";
import { generateAlone } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { readGguf } from "./gguf-reader.js";
import { llamaCppGreedy, openLlamaCpp } from "./llama-cpp.js";
import { PHI3_BOS, writePhi3Model } from "./sentencepiece-models.js";

const STEPS = 30;
const TEXTS = ["Once upon a time", "Hello, world!  Two  spaces", "a\nnew line", "Zoë's café 🙂"];
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gguf-phi3-"));
let llama: Llama;
before(async () => {
  llama = await openLlamaCpp();
});
after(async () => {
  await llama?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

function bytesOf(t: Tensor): Buffer {
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

async function ours(model: LoadedModel, ids: readonly number[]): Promise<number[]> {
  return generateAlone(model, engineBackends()[0]!.backend, ids, STEPS, { maxRunning: 1, kvBlocks: 64 });
}

/** llama.cpp's greedy tokens on `file` (past EOS too), checked to be no loop on one token. */
async function llamaCppTokens(file: string, ids: readonly number[]): Promise<number[]> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  try {
    const theirs = await llamaCppGreedy(model, ids, STEPS, -1, 1);
    assert.equal(theirs.length, STEPS);
    assert.ok(new Set(theirs).size >= 5, `a degenerate continuation: ${theirs.join(" ")}`);
    return theirs;
  } finally {
    await model.dispose();
  }
}

describe("Phi-3 as GGUF (llama.cpp's phi3)", () => {
  let a: LoadedModel;
  let b: LoadedModel;
  let file: string;
  before(async () => {
    // The tiny Phi-3's window (10) is shorter than its context, which llama.cpp's phi3 ignores: none here.
    const dir = path.join(tmp, "tiny-phi3");
    writePhi3Model(dir, { sliding_window: null });
    a = await loadModel(dir);
    file = `${dir}.gguf`;
    assert.equal(modelToGguf(a, file).architecture, "phi3");
    b = await loadModel(file);
  });

  it("fused attn_qkv and ffn_up as stored, and the name kept (the vocabulary has llama.cpp's Phi-3 tokens)", () => {
    const g = readGguf(file);
    assert.equal(g.metadata.get("general.architecture"), "phi3");
    assert.equal(g.metadata.get("general.name"), "tiny-phi3");
    assert.equal(g.metadata.get("phi3.attention.sliding_window"), 0);
    const qkv = g.tensors.get("blk.0.attn_qkv.weight")!;
    const up = g.tensors.get("blk.0.ffn_up.weight")!;
    assert.deepEqual(qkv.shape, a.weights.get("model.layers.0.self_attn.qkv_proj.weight")!.shape);
    assert.ok(Buffer.from(up.data).equals(bytesOf(a.weights.get("model.layers.0.mlp.gate_up_proj.weight")!)));
    assert.ok(!g.tensors.has("blk.0.attn_q.weight") && !g.tensors.has("blk.0.ffn_gate.weight"));
  });

  it("loads back with the same config, weights and tokenizer", () => {
    assert.deepEqual(b.config, a.config);
    for (const [name, t] of a.weights) {
      const u = b.weights.get(name)!;
      if (t.shape.length > 1) assert.ok(bytesOf(u).equals(bytesOf(t)), name);
      else assert.deepEqual(toFloat32(u), toFloat32(t), name);
    }
    for (const text of TEXTS) assert.deepEqual(b.tokenizer.encode(text), a.tokenizer.encode(text), text);
  });

  it(`llama.cpp tokenizes as we do and gives our ${STEPS} greedy tokens, as does the file loaded back in ours`, async () => {
    const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
    try {
      for (const text of TEXTS)
        assert.deepEqual(
          [...model.tokenize(text)],
          a.tokenizer.encode(text, { addSpecialTokens: false }),
          text,
        );
      assert.equal(model.tokens.bos, PHI3_BOS);
    } finally {
      await model.dispose();
    }
    const ids = a.tokenizer.encode("Once upon a time, in a land far away");
    const theirs = await llamaCppTokens(file, ids);
    assert.deepEqual(await ours(a, ids), theirs, "ours (Hugging Face directory) vs llama.cpp");
    assert.deepEqual(await ours(b, ids), theirs, "ours (the GGUF file) vs llama.cpp");
  });
});

describe("llama.cpp's Phi-3 name check", () => {
  it("a model named phi3 whose vocabulary lacks <unk> and <|endoftext|> is written without general.name and loads in llama.cpp", async () => {
    // A tiny Llama with a byte-level vocabulary (<s> and </s> only), in a directory named phi3.
    const dir = path.join(tmp, "tiny-phi3-named-llama");
    writeTinyModel(dir, "llama-mha");
    const model = await loadModel(dir);
    modelToGguf(model, `${dir}.gguf`);
    assert.equal(readGguf(`${dir}.gguf`).metadata.has("general.name"), false);
    const ids = model.tokenizer.encode("Hello, world");
    const theirs = await llamaCppTokens(`${dir}.gguf`, ids);
    assert.deepEqual(await ours(model, ids), theirs);
  });
});

describe("Phi-3 GGUF: what llama.cpp would run differently is refused by name", () => {
  it("a window shorter than the context (llama.cpp's phi3 turns it off), and LongRoPE", async () => {
    for (const [variant, why] of [
      ["phi3", /sliding-window attention \(window 10 < context 256\) has no equivalent in llama\.cpp's phi3/],
      [
        "phi3-longrope",
        /LongRoPE \(short\/long factors\) is not supported: llama\.cpp picks one factor table per context size/,
      ],
    ] as const) {
      const dir = path.join(tmp, `refused-${variant}`);
      writeTinyModel(dir, variant);
      const model = await loadModel(dir);
      assert.throws(() => modelToGguf(model, `${dir}.gguf`), why, variant);
    }
  });

  it("a GGUF file with LongRoPE factor tensors, or rotating part of each head, is refused on import", async () => {
    const file = path.join(tmp, "longrope.gguf");
    const f32 = (name: string, shape: number[]) => {
      const data = new Float32Array(shape.reduce((x, y) => x * y, 1)).fill(1);
      return {
        name,
        type: "f32" as const,
        shape,
        byteLength: data.byteLength,
        *chunks() {
          yield new Uint8Array(data.buffer);
        },
      };
    };
    const meta = [
      { key: "general.architecture", value: gguf.str("phi3") },
      { key: "phi3.block_count", value: gguf.u32(1) },
      { key: "phi3.context_length", value: gguf.u32(16) },
      { key: "phi3.embedding_length", value: gguf.u32(8) },
      { key: "phi3.feed_forward_length", value: gguf.u32(16) },
      { key: "phi3.attention.head_count", value: gguf.u32(2) },
    ];
    writeGguf(file, meta, [
      f32("token_embd.weight", [4, 8]),
      f32("rope_factors_long.weight", [2]),
      f32("rope_factors_short.weight", [2]),
    ]);
    await assert.rejects(
      loadModel(file),
      /LongRoPE factors \(rope_factors_long \/ rope_factors_short\) are not supported/,
    );
    const partial = path.join(tmp, "partial-rotary.gguf");
    writeGguf(
      partial,
      [...meta, { key: "phi3.rope.dimension_count", value: gguf.u32(2) }],
      [f32("token_embd.weight", [4, 8])],
    );
    await assert.rejects(
      loadModel(partial),
      /phi3\.rope\.dimension_count 2 ≠ head dimension 4: partial rotary embeddings are not supported/,
    );
  });
});
