// `convert --to gguf --quantize`: the quantizers decode back close to their input, the mixes pick
// llama.cpp's formats, and the files we write at each quantization load in llama.cpp and in our
// engine with the same greedy tokens; at Q8_0 stories260K keeps the float model's greedy tokens
// (or diverges only where its top two logits are within the quantization's effect on them).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { GgufQuantize } from "../../src/convert/gguf-format.js";
import { quantizeMatrix } from "../../src/convert/gguf-quantize.js";
import { quantTarget } from "../../src/convert/gguf-tensors.js";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { dequantize, ggmlQuantName } from "../../src/model/gguf-dequant.js";
import { GgufFile } from "../../src/model/gguf-reader.js";
import { parseHfConfig } from "../../src/model/hf-config.js";
import { loadModel } from "../../src/model/load.js";
import { randomWeights } from "../../src/model/random-weights.js";
import { writeSafetensors } from "../../src/model/safetensors-writer.js";
import { QUANT_TYPES, type QuantType } from "../../src/model/tensor.js";
import type { LoadedModel } from "../../src/model/types.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { generateAlone } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { randomF32, rng } from "../kernels/fixtures.js";
import { llamaCppFixture, llamaCppGreedy } from "./llama-cpp.js";
import { agreeOrNearTie } from "./near-tie.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const llamaCpp = llamaCppFixture("lamina-gguf-quant-");
const tmp = llamaCpp.tmp;

/**
 * Worst error each quantizer may leave in a block, from its step: Q8_0 half of max|x|/127;
 * Q4_0 a whole step max|x|/8 (the extreme opposite the block's largest value is clamped to +7);
 * Q4_K the sub-block's range over 15 (six-bit scale and min rounded up, so about one step); Q6_K
 * half of max|x|/31 plus its 8-bit scale's rounding step. f16 scales add 2^-11 of the step.
 */
const BOUND: Record<
  QuantType,
  { block: number; of: (xs: Float32Array, superBlock: Float32Array) => number }
> = {
  q8_0: { block: 32, of: (xs) => (maxAbs(xs) / 127) * 0.51 },
  q4_0: { block: 32, of: (xs) => (maxAbs(xs) / 8) * 1.01 },
  q4_k: { block: 32, of: (xs) => ((Math.max(0, ...xs) - Math.min(0, ...xs)) / 15) * 1.1 },
  // Half a step of the sub-block's scale rounded up to a multiple of d (max |scale| / 127 over the block).
  q6_k: { block: 16, of: (xs, sb) => (maxAbs(xs) / 31 + maxAbs(sb) / 31 / 127) * 0.51 },
  // Min-and-range formats: half a step of the block's range, plus the f16 rounding of m.
  q4_1: { block: 32, of: (xs) => ((Math.max(...xs) - Math.min(...xs)) / 15) * 0.51 + maxAbs(xs) * 2 ** -10 },
  q5_1: { block: 32, of: (xs) => ((Math.max(...xs) - Math.min(...xs)) / 31) * 0.51 + maxAbs(xs) * 2 ** -10 },
  q5_0: { block: 32, of: (xs) => (maxAbs(xs) / 16) * 1.01 },
  q5_k: { block: 32, of: (xs) => ((Math.max(0, ...xs) - Math.min(0, ...xs)) / 31) * 1.1 },
  // A whole step (the top clamped from 4 steps to 3) of the sub-block's scale rounded up to a multiple of d.
  q3_k: { block: 16, of: (xs, sb) => (maxAbs(xs) / 4 + maxAbs(sb) / 4 / 31) * 1.01 },
  // Half a step of the range over 3, the scale rounded up by up to a sixteenth of the block's largest.
  // Half the widest gap between levels (24, 89 to 113) or the 14 beyond 113, in steps of max|x|/127.
  iq4_nl: { block: 32, of: (xs) => (maxAbs(xs) / 127) * 14 * 1.01 },
  // IQ4_NL's bound on the block's stored scale (its own within one unit of d = max over the
  // super-block / 127 / 32), plus 127 such units where the stored scale came out smaller.
  iq4_xs: {
    block: 32,
    of: (xs, sb) => ((maxAbs(xs) / 127 + maxAbs(sb) / 127 / 32) * 14 + maxAbs(sb) / 32) * 1.01,
  },
  q2_k: {
    block: 16,
    of: (xs, sb) => ((Math.max(0, ...xs) - Math.min(0, ...xs)) / 3) * 0.51 + (maxAbs(sb) * 2) / 3 / 15,
  },
  // The scale's unit d = 2^(⌊log₂ max|x|⌋ − 3) against the doubled levels: the largest values
  // clamp from under 16 units to 12, and the widest gap between levels (8 to 12) is 4 units.
  mxfp4: {
    block: 32,
    of: (xs) => (maxAbs(xs) === 0 ? 0 : 4 * 2 ** (Math.floor(Math.log2(maxAbs(xs))) - 3) * 1.01),
  },
};

function maxAbs(xs: Float32Array): number {
  let m = 0;
  for (const v of xs) m = Math.max(m, Math.abs(v));
  return m;
}

describe("quantizers", () => {
  for (const type of QUANT_TYPES) {
    it(`${type}: every value decodes within its block's step, outliers and zero rows included`, () => {
      const cols = 512;
      const x = randomF32(6 * cols, rng(3), 0.7);
      x.fill(0, 0, cols);
      for (let i = cols + 5; i < x.length; i += 61) x[i] = x[i]! * 12;
      const got = dequantize(ggmlQuantName(type), quantizeMatrix(type, x, cols), x.length);
      const { block, of } = BOUND[type];
      for (let b = 0; b < x.length / block; b++) {
        const xs = x.subarray(b * block, (b + 1) * block);
        const sb = Math.floor((b * block) / 256) * 256;
        const bound = of(xs, x.subarray(sb, sb + 256)) + 1e-9;
        for (let j = 0; j < block; j++) {
          const e = Math.abs(got[b * block + j]! - xs[j]!);
          assert.ok(
            e <= bound,
            `${type} value ${b * block + j}: ${got[b * block + j]} for ${xs[j]} (bound ${bound})`,
          );
        }
      }
      assert.throws(() => quantizeMatrix(type, x, 48), /not whole/);
    });
  }
});

describe("quantization mixes", () => {
  it("q4_k_m: Q4_K, with Q6_K for the output and for attn_v/ffn_down of the first and last eighth and every third layer between; llama.cpp's fallbacks, or as stored, where rows are not whole blocks", () => {
    const t = (name: string, cols = 512) => quantTarget("q4_k_m", name, cols, 16);
    assert.equal(t("output.weight"), "q6_k");
    assert.equal(t("token_embd.weight"), "q4_k");
    // Tied embeddings: the table is the output matrix too, and quantized as llama.cpp quantizes that.
    assert.equal(quantTarget("q4_k_m", "token_embd.weight", 512, 16, true), "q6_k");
    assert.equal(quantTarget("q4_0", "token_embd.weight", 512, 16, true), "q6_k");
    assert.equal(quantTarget("q4_0", "token_embd.weight", 64, 16, true), "q8_0");
    assert.equal(t("blk.5.attn_q.weight"), "q4_k");
    // use_more_bits(i, 16): i < 2, i >= 14, or (i - 2) % 3 == 2.
    const sixes = [...Array(16).keys()].filter((l) => t(`blk.${l}.ffn_down.weight`) === "q6_k");
    assert.deepEqual(sixes, [0, 1, 4, 7, 10, 13, 14, 15]);
    assert.deepEqual(
      [...Array(16).keys()].filter((l) => t(`blk.${l}.attn_v.weight`) === "q6_k"),
      sixes,
    );
    // Rows that are not whole 256-value blocks: Q4_K falls back to Q5_0, Q6_K to Q8_0 (llama.cpp's).
    assert.equal(t("blk.3.attn_q.weight", 64), "q5_0");
    assert.equal(t("blk.0.attn_v.weight", 576), "q8_0");
    assert.equal(t("output.weight", 576), "q8_0");
    assert.equal(t("blk.3.ffn_down.weight", 172), null);
  });
  it("q5_k_m: Q5_K where q4_k_m has Q4_K, the same Q6_K layers, Q5_1 where rows are not whole 256-blocks", () => {
    const t = (name: string, cols = 512) => quantTarget("q5_k_m", name, cols, 16);
    assert.equal(t("output.weight"), "q6_k");
    assert.equal(t("token_embd.weight"), "q5_k");
    assert.equal(t("blk.5.attn_q.weight"), "q5_k");
    assert.deepEqual(
      [...Array(16).keys()].filter((l) => t(`blk.${l}.ffn_down.weight`) === "q6_k"),
      [0, 1, 4, 7, 10, 13, 14, 15],
    );
    assert.equal(t("blk.5.attn_q.weight", 576), "q5_1");
    assert.equal(t("blk.0.ffn_down.weight", 576), "q8_0");
    assert.equal(t("blk.5.ffn_up.weight", 100), null);
  });
  it("iq4_xs: IQ4_XS with a Q6_K output; IQ4_NL where rows are not whole 256-blocks (llama.cpp's fallback)", () => {
    const t = (name: string, cols = 512) => quantTarget("iq4_xs", name, cols, 16);
    assert.equal(t("output.weight"), "q6_k");
    assert.equal(t("token_embd.weight"), "iq4_xs");
    assert.equal(t("blk.0.ffn_down.weight"), "iq4_xs");
    assert.equal(t("blk.5.attn_q.weight", 576), "iq4_nl");
    assert.equal(t("output.weight", 576), "q8_0");
    assert.equal(t("blk.5.ffn_up.weight", 100), null);
  });
  it("mxfp4_moe: the experts' stacks in MXFP4, every other matrix Q8_0, the router as stored", () => {
    const t = (name: string, cols = 512) => quantTarget("mxfp4_moe", name, cols, 16);
    assert.equal(t("blk.3.ffn_up_exps.weight"), "mxfp4");
    assert.equal(t("blk.3.ffn_down_exps.weight"), "mxfp4");
    assert.equal(t("blk.3.ffn_up.weight"), "q8_0");
    assert.equal(t("output.weight"), "q8_0");
    assert.equal(t("blk.3.ffn_gate_inp.weight"), null);
    assert.equal(t("blk.3.ffn_up_exps.weight", 100), null);
  });
  it("q8_0 everywhere; q4_0 with a Q6_K output", () => {
    assert.equal(quantTarget("q8_0", "output.weight", 512, 4), "q8_0");
    assert.equal(quantTarget("q4_0", "output.weight", 512, 4), "q6_k");
    assert.equal(quantTarget("q4_0", "blk.0.ffn_up.weight", 512, 4), "q4_0");
  });
});

/** A tiny llama (or Mixtral) whose rows are multiples of 256 long (so every format fits), with sharp logits. */
async function wideTinyModel(variant: "llama-mha" | "mixtral" = "llama-mha"): Promise<LoadedModel> {
  const dir = path.join(tmp, `tiny-wide-${variant}`);
  writeTinyModel(dir, variant);
  const file = path.join(dir, "config.json");
  const json = { ...JSON.parse(readFileSync(file, "utf8")), hidden_size: 256, intermediate_size: 512 };
  writeFileSync(file, JSON.stringify(json));
  const weights = randomWeights(parseHfConfig(json, file), { dtype: "f32", seed: 11, embedStd: 0.5 });
  writeSafetensors(path.join(dir, "model.safetensors"), weights.values(), { format: "pt" });
  return loadModel(dir);
}

/** Writes `model` at a quantization; returns the file and our load of it. */
async function exported(model: LoadedModel, q: GgufQuantize, name: string) {
  const file = path.join(tmp, `${name}-${q}.gguf`);
  const summary = modelToGguf(model, file, { quantize: q });
  assert.equal(summary.fileType, q);
  return { file, ours: await loadModel(file) };
}

/** llama.cpp's greedy continuation of `ids` on a file. */
async function llamaCppTokens(file: string, ids: readonly number[], n: number): Promise<number[]> {
  const gguf = await llamaCpp.loadModel(file);
  try {
    const theirs = await llamaCppGreedy(gguf, ids, n, -1, 1);
    assert.equal(theirs.length, n);
    return theirs;
  } finally {
    await gguf.dispose();
  }
}

/** Ours on the quantized file against the float model and llama.cpp on the same file. */
async function checkGreedy(file: string, float: LoadedModel, quant: LoadedModel, prompt: string, n: number) {
  const ids = quant.tokenizer.encode(prompt);
  const opts = { maxRunning: 1, kvBlocks: 64 };
  const mine = await generateAlone(quant, nativeBackend(), ids, n, opts);
  const floatTokens = await generateAlone(float, nativeBackend(), ids, n, opts);
  const theirs = await llamaCppTokens(file, ids, n);
  agreeOrNearTie(`"${prompt}" ours vs float`, float, quant, ids, mine, floatTokens);
  agreeOrNearTie(`"${prompt}" ours vs llama.cpp`, float, quant, ids, mine, theirs);
  return { mine, floatTokens, theirs };
}

describe("quantized GGUF files we write run in llama.cpp and in our engine", () => {
  it("stories260K at q8_0: the float model's greedy tokens and llama.cpp's (or a near tie)", async () => {
    const float = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
    const { file, ours } = await exported(float, "q8_0", "stories");
    const types = new Set([...ours.weights.values()].filter((t) => t.shape.length > 1).map((t) => t.dtype));
    // down_proj rows (172 values) are not whole Q8_0 blocks: kept in f32, as llama.cpp would fall back.
    assert.deepEqual([...types].sort(), ["f32", "q8_0"]);
    assert.equal(ours.weights.get("model.layers.0.mlp.down_proj.weight")!.dtype, "f32");
    assert.ok(ours.source.label.includes("Q8_0"), ours.source.label);
    let same = 0;
    for (const prompt of ["Once upon a time", "The dog", "Lily and Tom"]) {
      const r = await checkGreedy(file, float, ours, prompt, 32);
      if (r.mine.join() === r.floatTokens.join()) same++;
    }
    // Measured: all three continuations are the float model's (a change here is worth a look).
    assert.equal(same, 3);
  });

  it("stories260K at q4_k_m: rows of 64 take llama.cpp's Q5_0 fallback (Q8_0 for Q6_K's); llama.cpp and ours agree (or a near tie)", async () => {
    const float = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
    const { file, ours } = await exported(float, "q4_k_m", "stories");
    assert.equal(ours.weights.get("model.layers.2.self_attn.q_proj.weight")!.dtype, "q5_0");
    assert.equal(ours.weights.get("model.layers.0.self_attn.v_proj.weight")!.dtype, "q8_0"); // more bits
    assert.equal(ours.weights.get("model.layers.0.mlp.down_proj.weight")!.dtype, "f32"); // 172: no block fits
    for (const prompt of ["Once upon a time", "The dog"]) await checkGreedy(file, float, ours, prompt, 24);
  });

  for (const q of ["q8_0", "q4_0", "q4_k_m", "q5_k_m", "iq4_xs"] as const) {
    it(`a tiny llama with 256-wide rows at ${q}: llama.cpp and ours agree (or a near tie)`, async () => {
      const float = await wideTinyModel();
      const { file, ours } = await exported(float, q, "wide");
      const want = {
        q8_0: ["q8_0"],
        q4_0: ["q4_0", "q6_k"],
        q4_k_m: ["q4_k", "q6_k"],
        q5_k_m: ["q5_k", "q6_k"],
        iq4_xs: ["iq4_xs", "q6_k"],
      }[q];
      const types = new Set([...ours.weights.values()].filter((t) => t.shape.length > 1).map((t) => t.dtype));
      assert.deepEqual([...types].sort(), want);
      await checkGreedy(file, float, ours, "Hello, world", 12);
    });
  }

  it("a tiny Mixtral at mxfp4_moe (llama.cpp's MXFP4_MOE): experts in MXFP4, the rest Q8_0; llama.cpp and ours agree (or a near tie)", async () => {
    const float = await wideTinyModel("mixtral");
    const { file, ours } = await exported(float, "mxfp4_moe", "wide-mixtral-mx");
    const g = GgufFile.open(file);
    try {
      assert.equal(g.header.tensors.get("blk.1.ffn_up_exps.weight")!.typeName, "MXFP4");
      assert.equal(g.header.tensors.get("blk.1.attn_q.weight")!.typeName, "Q8_0");
      assert.equal(g.header.metadata.get("general.file_type"), 38);
    } finally {
      g.close();
    }
    assert.equal(ours.weights.get("model.layers.0.block_sparse_moe.experts.2.w2.weight")!.dtype, "mxfp4");
    await checkGreedy(file, float, ours, "Hello, world", 12);
  });

  it("a tiny gpt-oss at mxfp4_moe (how its GGUF releases ship): experts in MXFP4, biases and sinks f32; llama.cpp and ours agree (or a near tie)", async () => {
    const float = await loadModel(writeTinyModel(path.join(tmp, "gpt-oss-mx"), "gpt-oss").dir);
    const { file, ours } = await exported(float, "mxfp4_moe", "gpt-oss");
    const g = GgufFile.open(file);
    try {
      const t = (name: string) => g.header.tensors.get(name)!;
      assert.equal(t("blk.0.ffn_gate_exps.weight").typeName, "MXFP4");
      assert.equal(t("blk.3.ffn_down_exps.weight").typeName, "MXFP4");
      assert.deepEqual(
        [t("blk.1.ffn_up_exps.bias").typeName, t("blk.1.ffn_up_exps.bias").shape],
        ["F32", [4, 32]],
      );
      assert.equal(t("blk.2.attn_sinks.weight").typeName, "F32");
      assert.equal(t("blk.2.attn_q.weight").typeName, "Q8_0");
    } finally {
      g.close();
    }
    assert.equal(ours.weights.get("model.layers.1.mlp.experts.3.up_proj.weight")!.dtype, "mxfp4");
    await checkGreedy(file, float, ours, "Hello, world", 12);
  });

  it("a tiny Mixtral at q4_k_m: each layer's experts stacked per projection in Q4_K/Q6_K, the router as stored; llama.cpp and ours agree (or a near tie)", async () => {
    const float = await wideTinyModel("mixtral");
    const { file, ours } = await exported(float, "q4_k_m", "wide-mixtral");
    const g = GgufFile.open(file);
    try {
      const t = (name: string) => g.header.tensors.get(name)!;
      const e = float.config.moe!.numExperts;
      assert.deepEqual(t("blk.0.ffn_gate_exps.weight").shape, [e, 512, 256]);
      assert.deepEqual(t("blk.0.ffn_down_exps.weight").shape, [e, 256, 512]);
      assert.equal(t("blk.1.ffn_up_exps.weight").typeName, "Q4_K");
      assert.equal(t("blk.0.ffn_down_exps.weight").typeName, "Q6_K"); // the first eighth: more bits
      assert.equal(t("blk.0.ffn_gate_inp.weight").typeName, "F32");
    } finally {
      g.close();
    }
    // Every expert's slice came back as its own matrix in the stack's format, a view into the stack
    // (held once, not copied per expert).
    const up = (e: number) => ours.weights.get(`model.layers.1.block_sparse_moe.experts.${e}.w3.weight`)!;
    assert.equal(up(3).dtype, "q4_k");
    assert.equal(up(3).data.buffer, up(0).data.buffer);
    assert.equal(up(3).data.byteOffset, up(0).data.byteOffset + 3 * up(0).data.byteLength);
    await checkGreedy(file, float, ours, "Hello, world", 12);
  });
});

describe("lamina convert --quantize", () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [path.join(repo, "bin", "lamina.js"), "convert", ...args], {
      encoding: "utf8",
    });
  it("writes a q4_k_m file and says so", () => {
    const out = path.join(tmp, "cli.gguf");
    const r = cli(
      "--model",
      path.join(sharedDataPath("models", "stories260K"), "hf"),
      "--to",
      "gguf",
      "--out",
      out,
      "--quantize",
      "q4_k_m",
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /q4_k_m weights/);
  });
  it("refuses an unknown quantization and --quantize without --to gguf, by name", () => {
    const bad = cli("--to", "gguf", "--out", path.join(tmp, "x.gguf"), "--quantize", "q3_k");
    assert.notEqual(bad.status, 0);
    assert.match(
      bad.stderr,
      /--quantize q3_k: unknown quantization; supported: q8_0, q4_0, q4_k_m, q5_k_m, iq4_xs, mxfp4_moe/,
    );
    const noTo = cli("--quantize", "q8_0");
    assert.notEqual(noTo.status, 0);
    assert.match(noTo.stderr, /--quantize needs --to gguf/);
  });
});
