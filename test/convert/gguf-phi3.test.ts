// Phi-3 through GGUF: q/k/v fused as attn_qkv and gate/up as ffn_up, as llama.cpp's phi3 reads
// them, and LongRoPE's factor tables; llama.cpp continues greedily as we do and our loader gives
// back the same model. Also the
// cause of llama.cpp's `_Map_base::at` on such files: it looks up "<s>", "</s>", "<unk>" and
// "<|endoftext|>" whenever general.name contains "phi3", so the writer leaves such a name out
// when the vocabulary lacks one of them.
import assert from "node:assert/strict";
import path from "node:path";
import { before, describe, it } from "node:test";
import { gguf, writeGguf } from "../../src/convert/gguf-writer.js";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import type { RopeScaling } from "../../src/model/config.js";
import { shortestF32 } from "../../src/model/gguf-reader.js";
import { loadModel } from "../../src/model/load.js";
import { toFloat32 } from "../../src/model/tensor.js";
import type { LoadedModel } from "../../src/model/types.js";
import { engineBackends } from "../helpers/backends.js";
import { generateAlone } from "../helpers/engine-driver.js";
import { tensorBytes } from "../helpers/same-weights.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { ggufRoundTrip, minimalMeta, onesF32 } from "./gguf-fixtures.js";
import { readGguf } from "./gguf-reader.js";
import { llamaCppFixture, llamaCppGreedy } from "./llama-cpp.js";
import { agreeOrFloatTie } from "./near-tie.js";
import { PHI3_BOS, writePhi3Model } from "./sentencepiece-models.js";

const STEPS = 30;
const TEXTS = ["Once upon a time", "Hello, world!  Two  spaces", "a\nnew line", "Zoë's café 🙂"];
const llamaCpp = llamaCppFixture("lamina-gguf-phi3-");
const tmp = llamaCpp.tmp;

async function ours(model: LoadedModel, ids: readonly number[]): Promise<number[]> {
  return generateAlone(model, engineBackends()[0]!.backend, ids, STEPS, { maxRunning: 1, kvBlocks: 64 });
}

/** llama.cpp's greedy tokens on `file` (past EOS too), checked to be no loop on one token. */
async function llamaCppTokens(file: string, ids: readonly number[]): Promise<number[]> {
  const model = await llamaCpp.loadModel(file);
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
    assert.ok(
      Buffer.from(up.data).equals(tensorBytes(a.weights.get("model.layers.0.mlp.gate_up_proj.weight")!)),
    );
    assert.ok(!g.tensors.has("blk.0.attn_q.weight") && !g.tensors.has("blk.0.ffn_gate.weight"));
  });

  it("loads back with the same config, weights and tokenizer", () => {
    assert.deepEqual(b.config, a.config);
    for (const [name, t] of a.weights) {
      const u = b.weights.get(name)!;
      if (t.shape.length > 1) assert.ok(tensorBytes(u).equals(tensorBytes(t)), name);
      else assert.deepEqual(toFloat32(u), toFloat32(t), name);
    }
    for (const text of TEXTS) assert.deepEqual(b.tokenizer.encode(text), a.tokenizer.encode(text), text);
  });

  it(`llama.cpp tokenizes as we do and gives our ${STEPS} greedy tokens (or parts from them only at a tie), as does the file loaded back in ours`, async () => {
    const model = await llamaCpp.loadModel(file);
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
    const mine = await ours(a, ids);
    agreeOrFloatTie("ours (Hugging Face directory) vs llama.cpp", a, ids, mine, theirs);
    assert.deepEqual(await ours(b, ids), mine, "ours (the GGUF file) vs ours (Hugging Face directory)");
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

describe("Phi-3 with LongRoPE as GGUF", () => {
  const half = 8; // head_dim 16
  // Decimals as a config.json states them (GGUF keeps the float32 nearest, which reads back as them).
  const shortFactor = Array.from({ length: half }, (_, i) => Number((1 + 0.4 * i).toFixed(1)));
  const longFactor = Array.from({ length: half }, (_, i) => 1 + 2.5 * i);
  let a: LoadedModel;
  let b: LoadedModel;
  let file: string;
  before(async () => {
    // An original context (512) beyond what the test runs: llama.cpp then applies the short table
    // to every position, as the engine does below the original length.
    const dir = path.join(tmp, "tiny-phi3-longrope");
    writePhi3Model(dir, {
      sliding_window: null,
      max_position_embeddings: 1024,
      original_max_position_embeddings: 512,
      rope_scaling: { type: "longrope", short_factor: shortFactor, long_factor: longFactor },
    });
    a = await loadModel(dir);
    file = `${dir}.gguf`;
    modelToGguf(a, file);
    b = await loadModel(file);
  });

  it("the factor tables as rope_factors_short / rope_factors_long, the original length and attention factor as keys", () => {
    const g = readGguf(file);
    const f32 = (name: string) => {
      const t = g.tensors.get(name)!;
      return Array.from(new Float32Array(t.data.slice().buffer));
    };
    assert.deepEqual(f32("rope_factors_short.weight"), shortFactor.map(Math.fround));
    assert.deepEqual(f32("rope_factors_long.weight"), longFactor.map(Math.fround));
    assert.equal(g.metadata.get("phi3.rope.scaling.original_context_length"), 512);
    const attn = Math.sqrt(1 + Math.log(2) / Math.log(512));
    assert.equal(g.metadata.get("phi3.rope.scaling.attn_factor"), Math.fround(attn));
  });

  it("loads back with the same config (the computed attention factor as the float32 GGUF stores)", () => {
    const s = a.config.ropeScaling as Extract<RopeScaling, { type: "longrope" }>;
    const attentionFactor = shortestF32(Math.fround(s.attentionFactor));
    assert.deepEqual(b.config, { ...a.config, ropeScaling: { ...s, attentionFactor } });
  });

  it(`llama.cpp gives our ${STEPS} greedy tokens (or parts from them only at a tie), as does the file loaded back in ours`, async () => {
    const ids = a.tokenizer.encode("Once upon a time, in a land far away");
    const theirs = await llamaCppTokens(file, ids);
    const mine = await ours(a, ids);
    agreeOrFloatTie("ours (Hugging Face directory) vs llama.cpp", a, ids, mine, theirs);
    agreeOrFloatTie(
      "ours (the GGUF file) vs ours (Hugging Face directory)",
      a,
      ids,
      await ours(b, ids),
      mine,
    );
    // The short table matters here: without it the continuation differs.
    const plain = { ...a, config: { ...a.config, ropeScaling: null } };
    assert.notDeepEqual(await ours(plain, ids), theirs, "the LongRoPE tables make no difference here");
  });
});

describe("Phi-4-mini's partial rotary embeddings as GGUF", () => {
  it("travel as rope.dimension_count and load back with the same config and the same tokens", async () => {
    const { model, file } = await ggufRoundTrip(path.join(tmp, "phi4-mini"), "phi4-mini", "phi3");
    assert.equal(model.config.rotaryDim, 12);
    assert.equal(readGguf(file).metadata.get("phi3.rope.dimension_count"), 12);
  });
});

describe("Phi-3 GGUF: what llama.cpp would run differently is refused by name", () => {
  it("a window shorter than the context (llama.cpp's phi3 turns it off)", async () => {
    const dir = path.join(tmp, "refused-phi3");
    writeTinyModel(dir, "phi3");
    const model = await loadModel(dir);
    assert.throws(
      () => modelToGguf(model, `${dir}.gguf`),
      /sliding-window attention \(window 10 < context 256\) has no equivalent in llama\.cpp's phi3/,
    );
  });

  it("LongRoPE tables outside phi3, of the wrong size or without their original length, and partial rotary embeddings outside phi3, glm4 and glm4moe are refused on import", async () => {
    const file = path.join(tmp, "longrope.gguf");
    const f32 = onesF32;
    const metaOf = minimalMeta;
    const meta = metaOf("phi3");
    // Head dimension 8 / 2 = 4: two factors a table.
    const tables = (n: number) => [
      f32("rope_factors_long.weight", [n]),
      f32("rope_factors_short.weight", [n]),
    ];
    const cases = [
      [
        metaOf("llama"),
        2,
        /LongRoPE factors \(rope_factors_long \/ rope_factors_short\) in the llama architecture are not supported \(phi3's are\)/,
      ],
      [meta, 3, /tensor "rope_factors_short\.weight" is F32 \[3\], want F32 \[2\]/],
      [meta, 2, /missing metadata "phi3\.rope\.scaling\.original_context_length"/],
    ] as const;
    for (const [kv, n, why] of cases) {
      writeGguf(file, kv, [f32("token_embd.weight", [4, 8]), ...tables(n)]);
      await assert.rejects(loadModel(file), why);
    }
    const partial = path.join(tmp, "partial-rotary.gguf");
    writeGguf(
      partial,
      [...metaOf("llama"), { key: "llama.rope.dimension_count", value: gguf.u32(2) }],
      [f32("token_embd.weight", [4, 8])],
    );
    await assert.rejects(
      loadModel(partial),
      /llama\.rope\.dimension_count 2 ≠ head dimension 4: partial rotary embeddings are supported for phi3, glm4 and glm4moe only/,
    );
  });
});
