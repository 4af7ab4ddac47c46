// FP8 checkpoints (quantization_config quant_method "fp8", F8_E4M3 weights with a scale per
// 128 × 128 block in `<name>_scale_inv`): every E4M3 value against the format's definition, a tiny
// model written in FP8 (weights rounded to E4M3 here, block scales chosen per block) loading with
// each weight widened to exactly fp8 · scale in bf16 and running as the float64 reference of those
// weights, and the clear errors for what is missing or not FP8.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { e4m3 } from "../../src/model/fp8-weights.js";
import { loadModel } from "../../src/model/load.js";
import { readSafetensors } from "../../src/model/safetensors.js";
import { bf16ToF32, f32ToBf16, type Tensor, toFloat32 } from "../../src/model/tensor.js";
import { engineBackends } from "../helpers/backends.js";
import { generateAlone } from "../helpers/engine-driver.js";
import { writeRawSafetensors } from "../helpers/raw-safetensors.js";
import { referenceLogits } from "../helpers/reference-forward.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-fp8-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** E4M3 from its definition: 2^(e − 7) · (1 + m/8), subnormals 2^-6 · m/8, S.1111.111 NaN. */
function e4m3Spec(b: number): number {
  const s = b & 0x80 ? -1 : 1;
  const e = (b >> 3) & 15;
  const m = b & 7;
  if (e === 15 && m === 7) return Number.NaN;
  return s * (e === 0 ? 2 ** -6 * (m / 8) : 2 ** (e - 7) * (1 + m / 8));
}

/** The E4M3 byte nearest v (ties to the even mantissa, as torch rounds), |v| ≤ 448. */
function toE4m3(v: number): number {
  let best = 0;
  for (let b = 0; b < 256; b++) {
    const x = e4m3Spec(b);
    if (Number.isNaN(x)) continue;
    const d = Math.abs(x - v) - Math.abs(e4m3Spec(best) - v);
    if (d < 0 || (d === 0 && (b & 1) === 0 && (best & 1) === 1)) best = b;
  }
  return best;
}

const BLOCK = 32;

/**
 * The tiny llama in `dir` rewritten as an FP8 checkpoint: each linear weight of a layer as E4M3
 * bytes against a block scale max|w| / 448, the rest as written; returns each weight's meant bf16.
 */
function toFp8Checkpoint(dir: string, dropScale?: string): Map<string, Float32Array> {
  const file = path.join(dir, "model.safetensors");
  const meant = new Map<string, Float32Array>();
  const out: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[] = [];
  for (const [name, t] of readSafetensors(file)) {
    const w = toFloat32(t);
    const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    if (!/\.(q|k|v|o|gate|up|down)_proj\.weight$/.test(name)) {
      out.push({ name, dtype: "F32", shape: [...t.shape], bytes: f32(Float32Array.from(w)) });
      continue;
    }
    const [rows, cols] = t.shape as [number, number];
    const br = Math.ceil(rows / BLOCK);
    const bc = Math.ceil(cols / BLOCK);
    const scale = new Float32Array(br * bc);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        const k = Math.floor(r / BLOCK) * bc + Math.floor(c / BLOCK);
        scale[k] = Math.max(scale[k]!, Math.abs(w[r * cols + c]!) / 448);
      }
    const bytes = new Uint8Array(rows * cols);
    const m = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        const s = scale[Math.floor(r / BLOCK) * bc + Math.floor(c / BLOCK)]!;
        bytes[r * cols + c] = toE4m3(s === 0 ? 0 : w[r * cols + c]! / s);
        m[r * cols + c] = bf16ToF32(f32ToBf16(e4m3Spec(bytes[r * cols + c]!) * s));
      }
    meant.set(name, m);
    out.push({ name, dtype: "F8_E4M3", shape: [rows, cols], bytes });
    if (name !== dropScale)
      out.push({ name: `${name}_scale_inv`, dtype: "F32", shape: [br, bc], bytes: f32(scale) });
  }
  writeRawSafetensors(file, out);
  const cfg = path.join(dir, "config.json");
  const json = JSON.parse(readFileSync(cfg, "utf8"));
  json.quantization_config = {
    quant_method: "fp8",
    fmt: "e4m3",
    activation_scheme: "dynamic",
    weight_block_size: [BLOCK, BLOCK],
  };
  writeFileSync(cfg, JSON.stringify(json));
  return meant;
}

describe("FP8 checkpoints", () => {
  it("every E4M3 byte decodes as the format defines it", () => {
    for (let b = 0; b < 256; b++) {
      const want = e4m3Spec(b);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(e4m3(b)), `byte ${b}`);
      else assert.equal(e4m3(b), want, `byte ${b}`);
    }
    assert.deepEqual([e4m3(0x38), e4m3(0x7e), e4m3(0x01), e4m3(0xb8)], [1, 448, 2 ** -9, -1]);
  });

  it("a tiny model in FP8 loads as fp8 · scale in bf16 and runs as the reference of those weights", async () => {
    const dir = writeTinyModel(path.join(tmp, "fp8"), "llama-gqa").dir;
    const meant = toFp8Checkpoint(dir);
    const model = await loadModel(dir);
    for (const [name, m] of meant) {
      const t = model.weights.get(name) as Tensor;
      assert.equal(t.dtype, "bf16", name);
      assert.deepEqual(toFloat32(t), m, name);
    }
    const backend = engineBackends()[0]!.backend;
    const prompt = [256, 72, 101, 108, 108, 111];
    const ref = referenceLogits(model.config, model.weights, prompt).at(-1)!;
    const ids = await generateAlone(model, backend, prompt, 1);
    let best = 0;
    for (let i = 1; i < ref.length; i++) if (ref[i]! > ref[best]!) best = i;
    assert.equal(ids[0], best, "the first greedy token is the reference's argmax");
  });

  it("refuses what it cannot read, by name", async () => {
    const dir = writeTinyModel(path.join(tmp, "fp8-bad"), "llama-mha").dir;
    toFp8Checkpoint(dir);
    const cfg = path.join(dir, "config.json");
    const json = JSON.parse(readFileSync(cfg, "utf8"));
    writeFileSync(cfg, JSON.stringify({ ...json, quantization_config: { quant_method: "gptq", bits: 4 } }));
    await assert.rejects(
      loadModel(dir),
      /quantization_config\.quant_method "gptq" is not supported \(fp8 is/,
    );
    writeFileSync(cfg, JSON.stringify({ ...json, quantization_config: undefined }));
    await assert.rejects(
      loadModel(dir),
      /is FP8 \(F8_E4M3\), but .*config\.json has no fp8 quantization_config/,
    );
    const gone = "model.layers.0.self_attn.q_proj.weight";
    const dir2 = writeTinyModel(path.join(tmp, "fp8-noscale"), "llama-mha").dir;
    toFp8Checkpoint(dir2, gone);
    await assert.rejects(
      loadModel(dir2),
      /FP8 tensor "model\.layers\.0\.self_attn\.q_proj\.weight" has no scale "model\.layers\.0\.self_attn\.q_proj\.weight_scale_inv"/,
    );
  });
});
