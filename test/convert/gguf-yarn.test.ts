// YaRN through GGUF: the keys llama.cpp reads (type, factor, original context; the betas and the
// attention factor's ratio to llama.cpp's own magnitude only where they differ from its defaults),
// read back to the same scaling, and what llama.cpp would apply differently refused by name on
// export and on import. That llama.cpp computes the same tokens from the exported tiny Qwen3 with
// YaRN is in gguf-llamacpp.test.ts, with the other tiny variants.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { gguf, writeGguf } from "../../src/convert/gguf-writer.js";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { loadModel } from "../../src/model/load.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { engineBackends } from "../helpers/backends.js";
import { greedy, runToCompletion } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { ggufRoundTrip, minimalMeta, onesF32 } from "./gguf-fixtures.js";
import { readGguf } from "./gguf-reader.js";
import { llamaCppFixture, llamaCppGreedy } from "./llama-cpp.js";

const llamaCpp = llamaCppFixture("lamina-gguf-yarn-");
const tmp = llamaCpp.tmp;

/** The tiny Qwen3 with YaRN, its config.json's rope_scaling replaced by `rs`. */
function yarnModelDir(name: string, rs: Record<string, unknown>): string {
  const dir = writeTinyModel(path.join(tmp, name), "qwen3-yarn").dir;
  const file = path.join(dir, "config.json");
  const json = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...json, rope_scaling: { rope_type: "yarn", ...rs } }));
  return dir;
}

describe("YaRN through GGUF", () => {
  it("writes llama.cpp's keys, no more, and loads back with the same scaling and tokens", async () => {
    const { file } = await ggufRoundTrip(path.join(tmp, "tiny-qwen3-yarn"), "qwen3-yarn", "qwen3");
    const m = readGguf(file).metadata;
    assert.equal(m.get("qwen3.rope.scaling.type"), "yarn");
    assert.equal(m.get("qwen3.rope.scaling.factor"), 4);
    assert.equal(m.get("qwen3.rope.scaling.original_context_length"), 64);
    // The defaults llama.cpp assumes (betas 32 and 1, magnitude 0.1 · ln 4 + 1) are left unwritten.
    for (const k of ["attn_factor", "yarn_beta_fast", "yarn_beta_slow"])
      assert.equal(m.has(`qwen3.rope.scaling.${k}`), false, k);
  });

  it("a model's own attention factor travels as attn_factor, comes back, and runs as in llama.cpp", async () => {
    // An original context of 512 puts the ramp over frequencies 1 to 8 of 16, which turn within
    // the test's positions: a magnitude or ramp llama.cpp applied otherwise changes its tokens
    // (with mscale alone instead of 1.3 they differ, measured).
    const dir = yarnModelDir("attn", {
      factor: 4,
      original_max_position_embeddings: 512,
      attention_factor: 1.3,
    });
    const model = await loadModel(dir);
    const file = `${dir}.gguf`;
    modelToGguf(model, file);
    const m = readGguf(file).metadata;
    const ratio = m.get("qwen3.rope.scaling.attn_factor") as number;
    assert.ok(Math.abs(ratio - 1.3 / (1 + 0.1 * Math.log(4))) < 1e-6, `attn_factor ${ratio}`);
    assert.equal(m.has("qwen3.rope.scaling.yarn_attn_factor"), false);
    const back = (await loadModel(file)).config.ropeScaling;
    assert.ok(back?.type === "yarn");
    assert.ok(Math.abs(back.attentionFactor - 1.3) < 1e-6, `attention factor ${back.attentionFactor}`);
    assert.deepEqual({ ...back, attentionFactor: 1.3 }, model.config.ropeScaling);
    // llama.cpp reads the key the same way: its greedy tokens are ours (past EOS, all 30).
    const ids = model.tokenizer.encode("Hello, world");
    const core = buildColocatedEngine(model, engineBackends()[0]!.backend, { maxRunning: 1, kvBlocks: 64 });
    const params = greedy(30, { ignoreEos: true });
    const ours = (await runToCompletion(core, [{ id: "p", promptTokenIds: ids, params }])).get("p")!.tokens;
    const gguf = await llamaCpp.loadModel(file);
    try {
      const theirs = await llamaCppGreedy(gguf, ids, 30, -1, 1);
      assert.ok(new Set(theirs).size >= 5, `a degenerate continuation: ${theirs.join(" ")}`);
      assert.deepEqual(ours, theirs);
    } finally {
      await gguf.dispose();
    }
  });

  it("what llama.cpp would run differently is refused on export: no truncation, other betas", async () => {
    const cases = [
      [{ truncate: false }, /YaRN with truncate = false has no equivalent in llama\.cpp/],
      [{ beta_fast: 16 }, /YaRN beta_fast 16 \/ beta_slow 1: llama\.cpp runs YaRN with 32 and 1/],
      [{ beta_slow: 2 }, /YaRN beta_fast 32 \/ beta_slow 2/],
    ] as const;
    for (const [i, [rs, why]] of cases.entries()) {
      const dir = yarnModelDir(`refused-${i}`, { factor: 4, original_max_position_embeddings: 64, ...rs });
      const model = await loadModel(dir);
      assert.throws(() => modelToGguf(model, `${dir}.gguf`), why);
    }
  });

  it("files whose YaRN the engine would apply differently are refused by key", async () => {
    const file = path.join(tmp, "bad-yarn.gguf");
    const embd = onesF32("token_embd.weight", [4, 8]);
    const k = (name: string) => `llama.rope.scaling.${name}`;
    const yarn = [...minimalMeta("llama"), { key: k("type"), value: gguf.str("yarn") }];
    const cases = [
      [yarn, /YaRN RoPE scaling needs a positive llama\.rope\.scaling\.factor/],
      [
        [
          ...yarn,
          { key: k("factor"), value: gguf.f32(4) },
          { key: k("yarn_log_multiplier"), value: gguf.f32(0.1) },
        ],
        /yarn_log_multiplier = 0\.1\d* is not supported/,
      ],
      [
        [
          ...yarn,
          { key: k("factor"), value: gguf.f32(4) },
          { key: k("yarn_ext_factor"), value: gguf.f32(0.5) },
        ],
        /yarn_ext_factor = 0\.5 is not supported/,
      ],
      [
        [
          ...yarn,
          { key: k("factor"), value: gguf.f32(4) },
          { key: k("yarn_beta_fast"), value: gguf.f32(0.5) },
        ],
        /yarn_beta_fast \(0\.5\) must exceed/,
      ],
      [
        [
          ...yarn,
          { key: k("factor"), value: gguf.f32(4) },
          { key: k("yarn_attn_factor"), value: gguf.f32(2) },
        ],
        /yarn_attn_factor = 2 is not supported \(llama\.cpp releases apply it differently/,
      ],
      [
        [...minimalMeta("llama"), { key: k("type"), value: gguf.str("dynamic") }],
        /"dynamic" is not supported \(linear and yarn are\)/,
      ],
    ] as const;
    for (const [kv, why] of cases) {
      writeGguf(file, kv, [embd]);
      await assert.rejects(loadModel(file), why);
    }
  });
});
