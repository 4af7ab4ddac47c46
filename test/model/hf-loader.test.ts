import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { loadHfModel } from "../../src/model/hf-loader.js";
import { readSafetensors } from "../../src/model/safetensors.js";
import { writeSafetensors } from "../../src/model/safetensors-writer.js";
import { isQuantTensor, type Tensor } from "../../src/model/tensor.js";
import {
  TINY_BOS,
  TINY_EOS,
  TINY_VARIANTS,
  type TinyVariant,
  writeTinyModel,
} from "../helpers/tiny-models.js";

const root = mkdtempSync(path.join(tmpdir(), "lamina-hf-"));
after(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;
function fresh(variant: TinyVariant) {
  return writeTinyModel(path.join(root, `${variant}-${counter++}`), variant);
}

/**
 * ERNIE 4.5 and GLM-4 store q/k rows (GLM's biases too) in interleaved RoPE pairs over the dims RoPE
 * turns: all 32 of ERNIE's head, the first 16 of GLM's; the loader puts them in rotate-half order.
 */
function interleavedQk(variant: TinyVariant, name: string): number {
  if ((variant === "ernie4_5" || variant === "ernie4_5-moe") && /\.(q|k)_proj\.weight$/.test(name)) return 32;
  if (variant === "glm4" && /\.(q|k)_proj\.(weight|bias)$/.test(name)) return 16;
  return 0;
}

/** Row 2i + p of each 32-row head's first `rotated` moved to p · rotated/2 + i. */
function rotateHalfRows(t: Tensor, rotated: number): Uint16Array | Float32Array {
  const rows = t.shape[0]!;
  const cols = t.shape[1] ?? 1;
  const out = (t.data as Uint16Array).slice();
  const hd = 32;
  for (let r = 0; r < rows; r++) {
    const [h, j] = [Math.floor(r / hd), r % hd];
    if (j >= rotated) continue;
    const to = h * hd + (j % 2) * (rotated / 2) + Math.floor(j / 2);
    out.set((t.data as Uint16Array).subarray(r * cols, (r + 1) * cols), to * cols);
  }
  return out;
}

describe("Hugging Face model directories", () => {
  for (const variant of TINY_VARIANTS) {
    test(`tiny ${variant}: config, weights (bit-exact, stored precision) and tokenizer load`, async () => {
      const tiny = fresh(variant);
      const model = await loadHfModel(tiny.dir);
      assert.deepEqual(model.config, tiny.config);
      assert.equal(model.source.kind, "hf");
      assert.equal(model.weights.size, tiny.weights.size);
      for (const [name, t] of tiny.weights) {
        const got = model.weights.get(name)!;
        assert.ok(got, name);
        assert.equal(got.dtype, t.dtype, name);
        // gpt-oss's MXFP4 experts stay MXFP4: ggml's blocks, as bytes.
        const storage = isQuantTensor(t) ? Uint8Array : t.dtype === "f32" ? Float32Array : Uint16Array;
        assert.equal(got.data.constructor, storage, name);
        assert.ok(got.data.buffer instanceof SharedArrayBuffer);
        const rotated = interleavedQk(variant, name);
        assert.deepEqual(got.data, rotated > 0 ? rotateHalfRows(t, rotated) : t.data, name);
      }
      assert.deepEqual(model.tokenizer.encode("Hi"), [TINY_BOS, 72, 105]);
      assert.ok(model.generation.eosTokenIds?.includes(TINY_EOS));
      assert.equal(model.generation.temperature, 0);
    });
  }

  test("variants cover what they claim", () => {
    const c = (v: TinyVariant) => fresh(v).config;
    assert.equal(c("llama-mha").numKvHeads, c("llama-mha").numHeads);
    assert.ok(c("llama-gqa").numKvHeads < c("llama-gqa").numHeads);
    assert.equal(c("llama-gqa").tieWordEmbeddings, true);
    assert.equal(c("llama3-rope").ropeScaling?.type, "llama3");
    assert.equal(c("linear-rope").ropeScaling?.type, "linear");
    assert.equal(c("mistral").slidingWindow, 8);
    assert.equal(c("qwen2").attentionBias, true);
    const hd = c("head-dim");
    assert.notEqual(hd.headDim, hd.hiddenSize / hd.numHeads);
    assert.equal(fresh("llama-gqa").weights.get("model.norm.weight")!.dtype, "bf16");
    assert.equal(fresh("linear-rope").weights.get("model.norm.weight")!.dtype, "f16");
  });

  test("sharded weights load through model.safetensors.index.json", async () => {
    const tiny = fresh("qwen2");
    const all = readSafetensors(path.join(tiny.dir, "model.safetensors"));
    unlinkSync(path.join(tiny.dir, "model.safetensors"));
    const names = [...all.keys()];
    const half = Math.ceil(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((shard, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(
        path.join(tiny.dir, file),
        shard.map((n) => all.get(n)!),
      );
      for (const n of shard) weightMap[n] = file;
    });
    writeFileSync(
      path.join(tiny.dir, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: weightMap }),
    );
    const model = await loadHfModel(tiny.dir);
    for (const [name, t] of tiny.weights) assert.deepEqual(model.weights.get(name)!.data, t.data, name);
  });

  test("extra tensors are ignored", async () => {
    const tiny = fresh("llama-mha");
    const file = path.join(tiny.dir, "model.safetensors");
    const extra: Tensor = {
      name: "model.layers.0.self_attn.rotary_emb.inv_freq",
      dtype: "f32",
      shape: [8],
      data: new Float32Array(8),
    };
    writeSafetensors(file, [...readSafetensors(file).values(), extra]);
    const model = await loadHfModel(tiny.dir);
    assert.equal(model.weights.has(extra.name), false);
    assert.equal(model.weights.size, tiny.weights.size);
  });

  test("a missing tensor names the tensor and the directory", async () => {
    const tiny = fresh("llama-mha");
    const file = path.join(tiny.dir, "model.safetensors");
    const kept = [...readSafetensors(file).values()].filter(
      (t) => t.name !== "model.layers.1.mlp.up_proj.weight",
    );
    writeSafetensors(file, kept);
    await assert.rejects(
      loadHfModel(tiny.dir),
      (e: Error) =>
        e.message.includes(tiny.dir) &&
        e.message.includes('missing tensor "model.layers.1.mlp.up_proj.weight"') &&
        e.message.includes("[128, 64]"),
    );
  });

  test("an untied model without lm_head.weight is refused", async () => {
    const tiny = fresh("llama-mha");
    const file = path.join(tiny.dir, "model.safetensors");
    writeSafetensors(
      file,
      [...readSafetensors(file).values()].filter((t) => t.name !== "lm_head.weight"),
    );
    await assert.rejects(loadHfModel(tiny.dir), /missing tensor "lm_head\.weight"/);
  });

  test("a misshapen tensor names the tensor, the file and both shapes", async () => {
    const tiny = fresh("llama-gqa");
    const file = path.join(tiny.dir, "model.safetensors");
    const tensors = [...readSafetensors(file).values()].map((t) =>
      t.name === "model.layers.0.self_attn.k_proj.weight" ? { ...t, shape: [64, 32] } : t,
    );
    writeSafetensors(file, tensors);
    await assert.rejects(
      loadHfModel(tiny.dir),
      (e: Error) =>
        e.message.startsWith(file) &&
        e.message.includes('"model.layers.0.self_attn.k_proj.weight" has shape [64, 32]') &&
        e.message.includes("implies [32, 64]"),
    );
  });

  test("a bad config.json or unknown model_type names the file", async () => {
    const tiny = fresh("llama-mha");
    const configFile = path.join(tiny.dir, "config.json");
    const good = readFileSync(configFile, "utf8");
    writeFileSync(configFile, "{ not json");
    await assert.rejects(loadHfModel(tiny.dir), (e: Error) =>
      e.message.startsWith(`${configFile}: not valid JSON`),
    );
    writeFileSync(configFile, good.replace('"model_type": "llama"', '"model_type": "falcon"'));
    await assert.rejects(loadHfModel(tiny.dir), (e: Error) =>
      e.message.startsWith(`${configFile}: unsupported model_type "falcon"`),
    );
  });

  test("a truncated safetensors file names the file and the tensor", async () => {
    const tiny = fresh("mistral");
    const file = path.join(tiny.dir, "model.safetensors");
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 100));
    await assert.rejects(
      loadHfModel(tiny.dir),
      (e: Error) => e.message.startsWith(file) && /tensor ".+" ends at byte/.test(e.message),
    );
  });

  test("a directory without weights or config is refused clearly", async () => {
    const tiny = fresh("llama-mha");
    unlinkSync(path.join(tiny.dir, "model.safetensors"));
    await assert.rejects(
      loadHfModel(tiny.dir),
      /no model\.safetensors, model\.safetensors\.index\.json or \*\.safetensors/,
    );
    unlinkSync(path.join(tiny.dir, "config.json"));
    await assert.rejects(loadHfModel(tiny.dir), /no config\.json/);
  });
});
