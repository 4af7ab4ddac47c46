// Gemma 2 and Gemma 3 through GGUF: the files we write carry llama.cpp's gemma2 / gemma3 names
// and keys (norms as scales 1 + w, post-norms, soft-caps, window layers, the window layers' RoPE
// base, head_dim), llama.cpp tokenizes as we do and continues greedily as we do, our loader gives
// back the same model, and what llama.cpp would run differently is refused by name.
import assert from "node:assert/strict";
import path from "node:path";
import { before, describe, it } from "node:test";

import { gguf, writeGguf } from "../../src/convert/gguf-writer.js";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { isWindowLayer } from "../../src/model/config.js";
import {
  encodeWindowPattern,
  type GemmaMeta,
  gemmaAttentionScale,
  gemmaGgufFeatures,
} from "../../src/model/gguf-gemma.js";
import { GgufFile, type GgufMetaValue } from "../../src/model/gguf-reader.js";
import { loadModel } from "../../src/model/load.js";
import type { DType, Tensor } from "../../src/model/tensor.js";
import { toFloat32 } from "../../src/model/tensor.js";
import type { LoadedModel } from "../../src/model/types.js";
import { engineBackends } from "../helpers/backends.js";
import { generateAlone } from "../helpers/engine-driver.js";
import { assertSameWeights } from "../helpers/same-weights.js";
import { readGguf } from "./gguf-reader.js";
import { llamaCppFixture, llamaCppGreedy } from "./llama-cpp.js";
import { agreeOrFloatTie, agreeOrNearTie } from "./near-tie.js";
import { GEMMA_BOS, GEMMA_EOS, type GemmaVariant, writeGemmaModel } from "./sentencepiece-models.js";

const LLAMA_THREADS = 1;
const STEPS = 30;
const TEXTS = [
  "Once upon a time",
  "Hello, world!  Two  spaces",
  " leading space",
  "a\nnew line\n\n",
  "Zoë's naïve café: 42!",
  "日本語 🙂",
];

const llamaCpp = llamaCppFixture("lamina-gguf-gemma-");
const tmp = llamaCpp.tmp;

interface Case {
  readonly name: string;
  readonly variant: GemmaVariant;
  readonly overrides: Record<string, unknown>;
  readonly dtype: DType;
  /** llama.cpp's architecture, and what the file must say about window layers. */
  readonly arch: "gemma2" | "gemma3";
  readonly pattern: number | boolean[];
}

// llama.cpp fixes the attention scale at head_dim^-½ for these layer counts, so the tiny models'
// query_pre_attn_scalar is set to head_dim (the real 2B/9B/1B/4B/12B ones have it so too).
const CASES: Case[] = [
  {
    name: "gemma2 (f32): window layers 0 and 2 of 4, soft-caps, head_dim 32 ≠ 48/4",
    variant: "gemma2",
    overrides: { query_pre_attn_scalar: 32 },
    dtype: "f32",
    arch: "gemma2",
    pattern: 2,
  },
  {
    name: "gemma2 (bf16, hidden 64 so that √hidden is the same in bf16 and f32)",
    variant: "gemma2",
    overrides: { query_pre_attn_scalar: 32, hidden_size: 64 },
    dtype: "bf16",
    arch: "gemma2",
    pattern: 2,
  },
  {
    name: "gemma3 (f32): q/k norms, window layers 0 and 1 with their own RoPE base, linear-scaled global RoPE",
    variant: "gemma3",
    overrides: { query_pre_attn_scalar: 16, rope_local_base_freq: 100.0 },
    dtype: "f32",
    arch: "gemma3",
    pattern: 3,
  },
  {
    name: "gemma3 (f32): a final soft-cap, and window layers 1 and 2 (no period gives them: one flag per layer)",
    variant: "gemma3",
    overrides: {
      query_pre_attn_scalar: 16,
      final_logit_softcapping: 3.0,
      layer_types: ["full_attention", "sliding_attention", "sliding_attention"],
    },
    dtype: "f32",
    arch: "gemma3",
    pattern: [false, true, true],
  },
];

/** What a norm multiplies by: 1 + w in f32, as the engine computes it. */
function scaleOf(t: Tensor): number[] {
  return Array.from(toFloat32(t), (w) => Math.fround(1 + w));
}

async function ours(model: LoadedModel, ids: readonly number[]): Promise<number[]> {
  return generateAlone(model, engineBackends()[0]!.backend, ids, STEPS, { maxRunning: 1, kvBlocks: 64 });
}

for (const c of CASES) {
  describe(`${c.name} as GGUF`, () => {
    let a: LoadedModel;
    let b: LoadedModel;
    let file: string;
    before(async () => {
      const dir = path.join(tmp, c.name.replace(/\W+/g, "-"));
      writeGemmaModel(dir, c.variant, c.overrides, c.dtype);
      a = await loadModel(dir);
      file = `${dir}.gguf`;
      const summary = modelToGguf(a, file);
      assert.equal(summary.architecture, c.arch);
      assert.equal(summary.tokenizerModel, "llama");
      b = await loadModel(file);
    });

    it("is written under llama.cpp's names and keys, norms as 1 + w", () => {
      const g = readGguf(file);
      const m = (key: string) => g.metadata.get(`${c.arch}.${key}`);
      assert.equal(g.metadata.get("general.architecture"), c.arch);
      assert.equal(m("attention.key_length"), a.config.headDim);
      assert.equal(m("attention.value_length"), a.config.headDim);
      assert.equal(m("attention.sliding_window"), a.config.slidingWindow);
      assert.deepEqual(m("attention.sliding_window_pattern"), c.pattern);
      assert.equal(m("attn_logit_softcapping"), a.config.attnSoftcap);
      assert.equal(m("final_logit_softcapping"), a.config.finalSoftcap);
      assert.equal(m("rope.freq_base_swa"), a.config.localRopeTheta);
      // SentencePiece-style, no dummy prefix, <bos> added.
      assert.equal(g.metadata.get("tokenizer.ggml.model"), "llama");
      assert.equal(g.metadata.get("tokenizer.ggml.add_space_prefix"), false);
      assert.equal(g.metadata.get("tokenizer.ggml.add_bos_token"), true);
      assert.equal(g.metadata.get("tokenizer.ggml.bos_token_id"), GEMMA_BOS);
      assert.equal(g.metadata.get("tokenizer.ggml.eos_token_id"), GEMMA_EOS);
      // Tied: the output matrix is the embeddings'.
      assert.ok(!g.tensors.has("output.weight"));
      const norms = {
        "blk.1.attn_norm.weight": "model.layers.1.input_layernorm.weight",
        "blk.1.post_attention_norm.weight": "model.layers.1.post_attention_layernorm.weight",
        "blk.1.ffn_norm.weight": "model.layers.1.pre_feedforward_layernorm.weight",
        "blk.1.post_ffw_norm.weight": "model.layers.1.post_feedforward_layernorm.weight",
        "output_norm.weight": "model.norm.weight",
        ...(c.arch === "gemma3"
          ? {
              "blk.0.attn_q_norm.weight": "model.layers.0.self_attn.q_norm.weight",
              "blk.0.attn_k_norm.weight": "model.layers.0.self_attn.k_norm.weight",
            }
          : {}),
      };
      for (const [name, hf] of Object.entries(norms)) {
        const t = g.tensors.get(name);
        assert.ok(t, name);
        assert.equal(t.type, 0, `${name} is f32`);
        const stored = Array.from(
          new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength)),
        );
        assert.deepEqual(stored, scaleOf(a.weights.get(hf)!), name);
      }
      const layerNames = [...g.tensors.keys()].filter((n) => n.startsWith("blk.0."));
      assert.equal(layerNames.length, c.arch === "gemma3" ? 13 : 11, layerNames.join());
    });

    it("loads back with the same config, matrices, norm scales and tokenizer", () => {
      // The one difference: from GGUF the √hidden embedding scale is applied in f32, as llama.cpp does.
      assert.deepEqual(b.config, { ...a.config, embedScaleExact: true });
      assertSameWeights(a.weights, b.weights, scaleOf);
      for (const text of TEXTS) {
        const ids = a.tokenizer.encode(text);
        assert.equal(ids[0], GEMMA_BOS, JSON.stringify(text));
        assert.deepEqual(b.tokenizer.encode(text), ids, JSON.stringify(text));
        assert.equal(
          b.tokenizer.decode(ids, { skipSpecialTokens: true }),
          text,
          `decode ${JSON.stringify(text)}`,
        );
      }
      assert.equal(b.tokenizer.bosTokenId, GEMMA_BOS);
      assert.deepEqual(b.tokenizer.eosTokenIds, [GEMMA_EOS]);
    });

    it(`llama.cpp tokenizes as we do and gives our ${STEPS} greedy tokens (or parts from them only at a tie), as does the file loaded back in ours`, async () => {
      const model = await llamaCpp.loadModel(file);
      try {
        for (const text of TEXTS) {
          const ids = a.tokenizer.encode(text, { addSpecialTokens: false });
          assert.deepEqual([...model.tokenize(text)], ids, JSON.stringify(text));
          assert.equal(model.detokenize(model.tokenize(text)), text, JSON.stringify(text));
        }
        assert.equal(model.tokens.bos, GEMMA_BOS);
        const ids = a.tokenizer.encode("Once upon a time, in a land far away");
        // Past the window on the window layers (prompt + steps > window).
        assert.ok(a.config.slidingWindow! < ids.length + STEPS);
        assert.ok(a.config.slidingLayers!.some((_, l) => isWindowLayer(a.config, l)));
        const theirs = await llamaCppGreedy(model, ids, STEPS, -1, LLAMA_THREADS);
        assert.equal(theirs.length, STEPS);
        // The continuation depends on what is being checked: it is no loop on one token, and
        // without the window layers it would differ.
        assert.ok(new Set(theirs).size >= 5, `a degenerate continuation: ${theirs.join(" ")}`);
        const unwindowed = { ...a, config: { ...a.config, slidingWindow: null, slidingLayers: undefined } };
        assert.notDeepEqual(await ours(unwindowed, ids), theirs, "the window layers make no difference here");
        const mine = await ours(a, ids);
        agreeOrFloatTie("ours (Hugging Face directory) vs llama.cpp", a, ids, mine, theirs);
        assert.deepEqual(await ours(b, ids), mine, "ours (the GGUF file) vs ours (Hugging Face directory)");
      } finally {
        await model.dispose();
      }
    });
  });
}

describe("Gemma GGUF: what llama.cpp would run differently is refused by name", () => {
  const refused = async (variant: GemmaVariant, overrides: Record<string, unknown>, why: RegExp) => {
    const dir = path.join(tmp, `refused-${variant}-${Object.keys(overrides).join("-")}`);
    writeGemmaModel(dir, variant, overrides);
    const model = await loadModel(dir);
    assert.throws(() => modelToGguf(model, `${dir}.gguf`), why);
  };

  it("query_pre_attn_scalar other than the head_dim llama.cpp scales by", async () => {
    // The tiny Gemma 2 of the engine tests: query_pre_attn_scalar 24, head_dim 32.
    await refused(
      "gemma2",
      {},
      /attention scale 0\.204124 \(query_pre_attn_scalar 24\.0000\) differs from the 0\.176777 llama\.cpp's gemma2 fixes for 4 layers of head_dim 32/,
    );
  });

  it("gemma2 without soft-caps, or with an lm_head of its own", async () => {
    await refused(
      "gemma2",
      { query_pre_attn_scalar: 32, attn_logit_softcapping: null },
      /llama\.cpp's gemma2 always soft-caps attention scores and logits/,
    );
    await refused(
      "gemma2",
      { query_pre_attn_scalar: 32, tie_word_embeddings: false },
      /llama\.cpp's gemma2 takes the output matrix from the embeddings/,
    );
  });

  it("gemma3 with attention soft-capping", async () => {
    await refused(
      "gemma3",
      { query_pre_attn_scalar: 16, attn_logit_softcapping: 20.0 },
      /llama\.cpp's gemma3 does not soft-cap attention scores/,
    );
  });

  it("a Gemma architecture the engine does not run is named on import", async () => {
    const cases = [
      ["gemma3n", /unsupported architecture "gemma3n": Gemma 3n .*\(supported: .*gemma, gemma2, gemma3/],
      ["gemma-embedding", /unsupported architecture "gemma-embedding": EmbeddingGemma is an encoder/],
    ] as const;
    for (const [arch, why] of cases) {
      const file = path.join(tmp, `${arch}.gguf`);
      writeGguf(file, [{ key: "general.architecture", value: gguf.str(arch) }], []);
      await assert.rejects(loadModel(file), why);
    }
  });
});

describe("Gemma GGUF metadata as llama.cpp reads it", () => {
  const meta = (entries: Record<string, GgufMetaValue>): GemmaMeta => ({
    file: "x.gguf",
    get: (key) => entries[key],
    num: (key) => (typeof entries[key] === "number" ? (entries[key] as number) : undefined),
  });
  const shape = {
    numLayers: 4,
    hiddenSize: 64,
    numHeads: 4,
    headDim: 32,
    ropeTheta: 10000,
    ropeScaling: null,
  };

  it("defaults: gemma2 windows every other layer (4096) and soft-caps at 50 and 30; gemma3 has no window without one stated", () => {
    const g2 = gemmaGgufFeatures(meta({}), "gemma2", shape);
    assert.equal(g2.slidingWindow, 4096);
    assert.deepEqual(g2.slidingLayers, [true, false, true, false]);
    assert.equal(g2.attnSoftcap, 50);
    assert.equal(g2.finalSoftcap, 30);
    assert.equal(g2.localRopeTheta, undefined);
    const g3 = gemmaGgufFeatures(meta({}), "gemma3", shape);
    assert.equal(g3.slidingWindow, null);
    assert.equal(g3.slidingLayers, undefined);
    assert.equal(g3.attnSoftcap, undefined);
    assert.equal(g3.finalSoftcap, undefined);
    assert.equal(g3.localRopeTheta, 10000);
    const g3w = gemmaGgufFeatures(meta({ "gemma3.attention.sliding_window": 512 }), "gemma3", {
      ...shape,
      numLayers: 7,
    });
    assert.deepEqual(g3w.slidingLayers, [true, true, true, true, true, false, true]);
  });

  it("the attention scale: head_dim^-½, but (hidden / heads)^-½ at the 27B models' layer counts", () => {
    const g2at27b = { numLayers: 46, hiddenSize: 4608, numHeads: 32, headDim: 128 };
    assert.equal(gemmaAttentionScale("gemma2", g2at27b), 144 ** -0.5);
    assert.equal(gemmaAttentionScale("gemma2", { ...g2at27b, numLayers: 42 }), 128 ** -0.5);
    assert.equal(
      gemmaAttentionScale("gemma3", { numLayers: 62, hiddenSize: 5376, numHeads: 32, headDim: 128 }),
      168 ** -0.5,
    );
  });

  it("window layers as a period where one fits, else one flag per layer; both read back", () => {
    const layouts: [boolean[], number | boolean[]][] = [
      [[true, false, true, false], 2],
      [[true, true, false, true, true, false, true], 3],
      [[false, false, false], 1],
      [[true, true, true], 4],
      [
        [false, true, true],
        [false, true, true],
      ],
    ];
    for (const [layers, want] of layouts) {
      const pattern = encodeWindowPattern(layers);
      assert.deepEqual(pattern, want);
      const back = gemmaGgufFeatures(
        meta({
          "gemma2.attention.sliding_window_pattern": pattern as GgufMetaValue,
          "gemma2.attention.sliding_window": 8,
        }),
        "gemma2",
        { ...shape, numLayers: layers.length },
      );
      assert.deepEqual(back.slidingLayers ?? layers.map(() => false), layers);
    }
  });

  it("gemma2's window layers take rope.freq_base_swa where it differs, but not beside rope scaling (theirs keep it, ours drop it)", () => {
    const swa = meta({ "gemma2.rope.freq_base_swa": 100 });
    assert.equal(gemmaGgufFeatures(swa, "gemma2", shape).localRopeTheta, 100);
    assert.throws(
      () => gemmaGgufFeatures(swa, "gemma2", { ...shape, ropeScaling: { type: "linear", factor: 2 } }),
      /gemma2 with its own window-layer RoPE base \(gemma2\.rope\.freq_base_swa\) and rope scaling is not supported/,
    );
  });

  it("bad window metadata is named", () => {
    assert.throws(
      () =>
        gemmaGgufFeatures(
          meta({ "gemma2.attention.sliding_window_pattern": [true, false] }),
          "gemma2",
          shape,
        ),
      /gemma2\.attention\.sliding_window_pattern has 2 entries for 4 layers/,
    );
    assert.throws(
      () => gemmaGgufFeatures(meta({ "gemma2.attn_logit_softcapping": 0 }), "gemma2", shape),
      /gemma2\.attn_logit_softcapping = 0 is not positive/,
    );
  });
});

describe("quantized Gemma GGUF files we write", () => {
  // 256-wide rows in ffn_down (intermediate 256) take Q4_K/Q6_K; the rest, 64 wide, fall back as
  // llama.cpp's quantizer does: Q4_K to Q5_0, Q6_K to Q8_0.
  const want = { q8_0: ["q8_0"], q4_k_m: ["q4_k", "q5_0", "q6_k", "q8_0"] };
  it("q4_0 and q4_k_m put the tied embedding table in Q6_K, as llama.cpp quantizes the output matrix", async () => {
    const dir = path.join(tmp, "quant-gemma3-wide");
    writeGemmaModel(dir, "gemma3", { query_pre_attn_scalar: 16, hidden_size: 256, intermediate_size: 256 });
    const float = await loadModel(dir);
    for (const q of ["q4_0", "q4_k_m"] as const) {
      modelToGguf(float, `${dir}-${q}.gguf`, { quantize: q });
      const g = GgufFile.open(`${dir}-${q}.gguf`);
      try {
        const type = (name: string) => g.header.tensors.get(name)!.typeName;
        assert.equal(type("token_embd.weight"), "Q6_K", q);
        assert.equal(type("blk.1.attn_q.weight"), q === "q4_0" ? "Q4_0" : "Q4_K", q);
      } finally {
        g.close();
      }
    }
  });
  for (const q of ["q8_0", "q4_k_m"] as const) {
    it(`gemma3 at ${q}: llama.cpp, ours and the float model agree on greedy tokens (or a near tie)`, async () => {
      const dir = path.join(tmp, `quant-gemma3-${q}`);
      writeGemmaModel(dir, "gemma3", { query_pre_attn_scalar: 16, intermediate_size: 256 });
      const float = await loadModel(dir);
      const file = `${dir}.gguf`;
      modelToGguf(float, file, { quantize: q });
      const quant = await loadModel(file);
      const types = new Set(
        [...quant.weights.values()].filter((t) => t.shape.length > 1).map((t) => t.dtype),
      );
      assert.deepEqual([...types].sort(), want[q]);
      assert.deepEqual(quant.config, { ...float.config, embedScaleExact: true });
      const ids = float.tokenizer.encode("Once upon a time, in a land far away");
      const model = await llamaCpp.loadModel(file);
      try {
        const theirs = await llamaCppGreedy(model, ids, STEPS, -1, LLAMA_THREADS);
        assert.equal(theirs.length, STEPS);
        assert.ok(new Set(theirs).size >= 5, `a degenerate continuation: ${theirs.join(" ")}`);
        const mine = await ours(quant, ids);
        agreeOrNearTie("ours vs the float model", float, quant, ids, mine, await ours(float, ids));
        agreeOrNearTie("ours vs llama.cpp", float, quant, ids, mine, theirs);
      } finally {
        await model.dispose();
      }
    });
  }
});
