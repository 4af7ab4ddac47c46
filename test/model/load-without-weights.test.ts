import assert from "node:assert/strict";
import { mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { defaultKvDtype } from "../../src/placement/sizes.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

// A front end whose model workers hold the weights loads the model with `weights: false`: the
// config, tokenizer, generation settings and the embedding's type must come out as a full load's,
// with no tensor read, and the files' headers must still be checked.

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-load-no-weights-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const stories = sharedDataPath("models", "stories260K");

function assertSameButWeights(full: LoadedModel, bare: LoadedModel): void {
  assert.ok(full.weights.size > 0);
  assert.equal(bare.weights.size, 0, "no tensor was read");
  assert.deepEqual(bare.config, full.config);
  assert.deepEqual(bare.generation, full.generation);
  assert.deepEqual(bare.source, full.source);
  const emb = full.weights.get("model.embed_tokens.weight")!;
  assert.equal(bare.embedDtype, full.embedDtype);
  assert.equal(defaultKvDtype(bare), defaultKvDtype(full));
  if (emb.dtype === "f32" || emb.dtype === "f16" || emb.dtype === "bf16")
    assert.equal(bare.embedDtype, emb.dtype);
  const text = "Once upon a time, Lily saw a big red ball.";
  assert.deepEqual(bare.tokenizer.encode(text), full.tokenizer.encode(text));
}

describe("loading a model without its weights", () => {
  const cases: [string, () => string][] = [
    ["the built-in demo", () => "demo"],
    ["the random demo", () => "random"],
    ["a llama2.c checkpoint", () => path.join(stories, "stories260K.bin")],
    ["a Hugging Face directory", () => path.join(stories, "hf")],
    [
      "a bf16 Hugging Face directory (tiny GQA)",
      () => {
        const dir = path.join(tmp, "tiny-gqa");
        writeTinyModel(dir, "llama-gqa");
        return dir;
      },
    ],
  ];
  for (const [name, spec] of cases)
    test(name, async () => {
      const s = spec();
      assertSameButWeights(await loadModel(s), await loadModel(s, { weights: false }));
    });

  test("a GGUF file", async () => {
    const file = path.join(tmp, "stories.gguf");
    modelToGguf(await loadModel(path.join(stories, "hf")), file);
    const full = await loadModel(file);
    const bare = await loadModel(file, { weights: false });
    assertSameButWeights(full, bare);
    assert.equal(bare.embedDtype, "f32");
  });

  test("the KV cache defaults to the model's float type, f16 for a block format", async () => {
    const tiny = (variant: "llama-mha" | "llama-gqa" | "linear-rope") => {
      const dir = path.join(tmp, `kv-default-${variant}`);
      writeTinyModel(dir, variant);
      return dir;
    };
    for (const [variant, expected] of [
      ["llama-mha", "f32"],
      ["llama-gqa", "bf16"],
      ["linear-rope", "f16"],
    ] as const) {
      const dir = tiny(variant);
      assert.equal(defaultKvDtype(await loadModel(dir)), expected, variant);
      assert.equal(
        defaultKvDtype(await loadModel(dir, { weights: false })),
        expected,
        `${variant} without weights`,
      );
    }
    const file = path.join(tmp, "kv-default-q8.gguf");
    modelToGguf(await loadModel(tiny("llama-gqa")), file, { quantize: "q8_0" });
    assert.equal(defaultKvDtype(await loadModel(file)), "f16");
    assert.equal(defaultKvDtype(await loadModel(file, { weights: false })), "f16");
  });

  test("the headers are still checked: a missing tensor is named", async () => {
    const dir = path.join(tmp, "tiny-missing");
    writeTinyModel(dir, "llama-gqa");
    // Drop the weights file's tensors by replacing it with an empty safetensors file.
    const { writeSafetensors } = await import("../../src/model/safetensors-writer.js");
    unlinkSync(path.join(dir, "model.safetensors"));
    writeSafetensors(path.join(dir, "model.safetensors"), []);
    await assert.rejects(loadModel(dir, { weights: false }), /missing tensor "model\.embed_tokens\.weight"/);
  });

  test("a truncated llama2.c checkpoint is refused without reading its tensors", async () => {
    const { copyFileSync, truncateSync, statSync } = await import("node:fs");
    const file = path.join(tmp, "short.bin");
    copyFileSync(path.join(stories, "stories260K.bin"), file);
    truncateSync(file, statSync(file).size - 64);
    await assert.rejects(
      loadModel(file, { weights: false }),
      (e: Error) => e.message.includes("short.bin") && /bytes/.test(e.message),
    );
  });
});
