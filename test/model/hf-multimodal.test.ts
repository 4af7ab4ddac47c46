// Multimodal checkpoints run as their language model: Gemma 3's 4B-27B releases nest the text
// model's config in text_config (stating only what differs from transformers' defaults) and its
// weights under language_model.model.* or model.language_model.*, beside a vision tower that is not
// read. The tiny Gemma 3 rewritten so must load with the same config and give the same tokens.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { parseHfConfig } from "../../src/model/hf-config.js";
import { loadModel } from "../../src/model/load.js";
import { readSafetensors } from "../../src/model/safetensors.js";
import { writeSafetensors } from "../../src/model/safetensors-writer.js";
import { allocTensorData, type Tensor } from "../../src/model/tensor.js";
import { engineBackends } from "../helpers/backends.js";
import { generateAlone } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-multimodal-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A tiny model in `dir` rewritten as Gemma3ForConditionalGeneration (or Mistral3's) saves it. */
function asMultimodal(
  dir: string,
  prefix: "language_model.model." | "model.language_model.",
  type = "gemma3",
): void {
  const cfg = path.join(dir, "config.json");
  const text = JSON.parse(readFileSync(cfg, "utf8"));
  const { bos_token_id, eos_token_id, ...textOnly } = text;
  writeFileSync(
    cfg,
    JSON.stringify({
      architectures: [
        type === "gemma3" ? "Gemma3ForConditionalGeneration" : "Mistral3ForConditionalGeneration",
      ],
      model_type: type,
      bos_token_id,
      eos_token_id,
      text_config: textOnly,
      vision_config: { model_type: "siglip_vision_model", hidden_size: 16 },
      mm_tokens_per_image: 256,
    }),
  );
  const file = path.join(dir, "model.safetensors");
  const vision: Tensor = {
    name: "vision_tower.vision_model.post_layernorm.weight",
    dtype: "f32",
    shape: [16],
    data: allocTensorData("f32", 16),
  };
  const renamed = [...readSafetensors(file).values()].map((t) => ({
    ...t,
    name: t.name === "lm_head.weight" ? "language_model.lm_head.weight" : t.name.replace(/^model\./, prefix),
  }));
  writeSafetensors(file, [...renamed, vision], { format: "pt" });
}

describe("multimodal checkpoints as their language model", () => {
  for (const prefix of ["language_model.model.", "model.language_model."] as const) {
    it(`Gemma 3 with its text model under ${prefix}*: the same config and greedy tokens`, async () => {
      const plain = await loadModel(writeTinyModel(path.join(tmp, `plain-${prefix}`), "gemma3").dir);
      const dir = writeTinyModel(path.join(tmp, `mm-${prefix}`), "gemma3").dir;
      asMultimodal(dir, prefix);
      const mm = await loadModel(dir);
      assert.deepEqual(mm.config, plain.config);
      assert.ok(mm.weights.has("model.layers.0.self_attn.q_proj.weight"));
      assert.ok(
        ![...mm.weights.keys()].some((n) => n.startsWith("vision_tower")),
        "the vision tower is not read",
      );
      const backend = engineBackends()[0]!.backend;
      const ids = plain.tokenizer.encode("Hello");
      assert.deepEqual(
        await generateAlone(mm, backend, ids, 12),
        await generateAlone(plain, backend, ids, 12),
      );
    });
  }

  it("Mistral Small 3 (mistral3) with its Mistral under language_model.*: the same config and greedy tokens", async () => {
    const plain = await loadModel(writeTinyModel(path.join(tmp, "plain-mistral"), "mistral").dir);
    const dir = writeTinyModel(path.join(tmp, "mm-mistral"), "mistral").dir;
    asMultimodal(dir, "language_model.model.", "mistral3");
    const mm = await loadModel(dir);
    assert.deepEqual(mm.config, plain.config);
    assert.ok(mm.weights.has("lm_head.weight"), "the untied head from language_model.lm_head.weight");
    const backend = engineBackends()[0]!.backend;
    const ids = plain.tokenizer.encode("Hello");
    assert.deepEqual(await generateAlone(mm, backend, ids, 12), await generateAlone(plain, backend, ids, 12));
  });

  it("gemma-3-4b-it's config.json: the text model from text_config and Gemma3TextConfig's defaults", () => {
    const c = parseHfConfig(
      {
        architectures: ["Gemma3ForConditionalGeneration"],
        model_type: "gemma3",
        boi_token_index: 255999,
        eos_token_id: [1, 106],
        text_config: {
          hidden_size: 2560,
          intermediate_size: 10240,
          model_type: "gemma3_text",
          num_hidden_layers: 34,
          rope_scaling: { factor: 8.0, rope_type: "linear" },
          sliding_window: 1024,
        },
        vision_config: { model_type: "siglip_vision_model" },
      },
      "gemma-3-4b-it/config.json",
    );
    assert.equal(c.architecture, "gemma3_text");
    assert.deepEqual(
      [c.vocabSize, c.hiddenSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim],
      [262208, 2560, 34, 8, 4, 256],
    );
    assert.equal(c.tieWordEmbeddings, true);
    assert.deepEqual(c.eosTokenIds, [1, 106]);
    assert.equal(c.slidingWindow, 1024);
    assert.deepEqual(c.ropeScaling, { type: "linear", factor: 8 });
    assert.throws(
      () => parseHfConfig({ model_type: "gemma3" }, "x/config.json"),
      /model_type "gemma3" without a text_config object/,
    );
  });
});
