// gpt-oss: the kernels its graph adds (attention sinks, expert biases, the clamped SwiGLU) on
// every backend against their definitions, its MXFP4 release format running as the float64
// reference of the blocks it stores, the sinks reaching attention workers when the front end
// holds no other weight, and the clear errors for checkpoints that do not match their config.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { engineBackends } from "../helpers/backends.js";
import { generateAlone, greedy, runToCompletion } from "../helpers/engine-driver.js";
import { colocated, withModelWorkers } from "../helpers/model-workers.js";
import { writeRawSafetensors } from "../helpers/raw-safetensors.js";
import { referenceLogits } from "../helpers/reference-forward.js";
import { writeTinyModel } from "../helpers/tiny-models.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lamina-gpt-oss-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const prompt = [256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33];

/** Deterministic values spread over [-a, a]. */
function spread(n: number, a: number, seed = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => a * Math.sin(seed * 12.9898 + i * 78.233));
}

describe("gpt-oss kernels on every backend", () => {
  for (const { name, backend } of engineBackends()) {
    it(`${name}: attention sinks fold in as a zero-valued key (an empty range becomes zeros)`, () => {
      const T = 3;
      const H = 4;
      const D = 8;
      const out = spread(T * H * D, 1);
      const lse = Float32Array.from([0.5, -2, 3, Number.NEGATIVE_INFINITY, 1, 1, 1, 1, -40, 40, 0, 2]);
      const sinks = Float32Array.of(0, 1.5, -3, 2);
      const want = Float64Array.from(out);
      const wantLse = new Float64Array(T * H);
      for (let r = 0; r < T * H; r++) {
        const l = lse[r]!;
        const s = sinks[r % H]!;
        // softmax over the keys and the sink: the keys' share is e^l / (e^l + e^s).
        const share = l === Number.NEGATIVE_INFINITY ? 0 : 1 / (1 + Math.exp(s - l));
        for (let i = 0; i < D; i++) want[r * D + i] = want[r * D + i]! * share;
        wantLse[r] = l === Number.NEGATIVE_INFINITY ? s : Math.log(Math.exp(l) + Math.exp(s));
      }
      backend.attentionSinks(out, lse, sinks, T, H, D);
      for (let i = 0; i < out.length; i++) assert.ok(Math.abs(out[i]! - want[i]!) < 1e-6, `out[${i}]`);
      for (let r = 0; r < T * H; r++) assert.ok(Math.abs(lse[r]! - wantLse[r]!) < 1e-5, `lse[${r}]`);
    });

    it(`${name}: the clamped SwiGLU clamps gate above and up both ways`, () => {
      const n = 301;
      const gate = spread(n, 12, 2);
      const up = spread(n, 12, 3);
      const out = new Float32Array(n);
      backend.swigluClamped(out, gate, up, n, 1.702, 7);
      let clamped = 0;
      for (let i = 0; i < n; i++) {
        const g = Math.min(gate[i]!, 7);
        const u = Math.min(Math.max(up[i]!, -7), 7);
        if (g !== gate[i] || u !== up[i]) clamped++;
        const want = (u + 1) * (g / (1 + Math.exp(-1.702 * g)));
        assert.ok(Math.abs(out[i]! - want) <= 1e-5 * Math.max(1, Math.abs(want)), `element ${i}`);
      }
      assert.ok(clamped > n / 4, "the inputs reach past the limit");
    });

    it(`${name}: expert biases go to the rows grouped under each expert`, () => {
      const width = 5;
      const start = Int32Array.of(0, 2, 2, 6);
      const out = spread(6 * width, 1, 4);
      const before = Float32Array.from(out);
      const bias = spread(3 * width, 1, 5);
      backend.expertBias(out, bias, start, 3, width);
      for (let r = 0; r < 6; r++) {
        const e = r < 2 ? 0 : 2;
        for (let i = 0; i < width; i++)
          assert.ok(Math.abs(out[r * width + i]! - (before[r * width + i]! + bias[e * width + i]!)) < 1e-6);
      }
      assert.throws(() => backend.expertBias(out, bias, Int32Array.of(0, 4, 2, 6), 3, width), /expertStart/);
    });
  }
});

/** The float64 reference's greedy continuation of `ids`. */
function referenceGreedy(model: LoadedModel, ids: readonly number[], n: number): number[] {
  const seq = [...ids];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const logits = referenceLogits(model.config, model.weights, seq).at(-1)!;
    let best = 0;
    for (let v = 1; v < logits.length; v++) if (logits[v]! > logits[best]!) best = v;
    out.push(best);
    seq.push(best);
  }
  return out;
}

describe("gpt-oss as released: MXFP4 experts", async () => {
  const tiny = writeTinyModel(path.join(tmp, "mxfp4"), "gpt-oss-mxfp4");
  const model = await loadModel(tiny.dir);

  it("the experts stay MXFP4 in memory", () => {
    assert.equal(model.weights.get("model.layers.0.mlp.experts.0.gate_proj.weight")!.dtype, "mxfp4");
    assert.equal(model.weights.get("model.layers.3.mlp.experts.3.down_proj.weight")!.dtype, "mxfp4");
  });

  for (const { name, backend } of engineBackends())
    it(`${name}: greedy tokens follow the float64 reference of the stored blocks, or part at a near tie`, async () => {
      const n = 12;
      const got = await generateAlone(model, backend, prompt, n, { blockSize: 4 });
      const want = referenceGreedy(model, prompt, n);
      const at = got.findIndex((t, i) => t !== want[i]);
      if (at < 0) return;
      // The engine rounds the experts' inputs to 8 bits (the integer dot products); where it parts
      // from the reference, the reference's own two choices must be within that rounding.
      const logits = referenceLogits(model.config, model.weights, [...prompt, ...want.slice(0, at)]).at(-1)!;
      const range = Math.max(...logits) - Math.min(...logits);
      const gap = Math.abs(logits[got[at]!]! - logits[want[at]!]!);
      assert.ok(
        gap <= 0.02 * range,
        `step ${at}: ${got[at]} vs ${want[at]}, reference gap ${gap} of ${range}`,
      );
    });
});

describe("gpt-oss with model workers: the front end reads only the sinks", async () => {
  const tiny = writeTinyModel(path.join(tmp, "workers"), "gpt-oss");
  const model = await loadModel(tiny.dir);

  it("a front end with only the attention side's weights serves as colocated", async () => {
    const frontEnd = await loadModel(tiny.dir, { weights: "attention" });
    assert.deepEqual(
      [...frontEnd.weights.keys()],
      Array.from({ length: 4 }, (_, l) => `model.layers.${l}.self_attn.sinks`),
    );
    const reqs = [5, 9].map((len, i) => ({
      id: `g${i}`,
      promptTokenIds: prompt.slice(0, len),
      params: greedy(8, { ignoreEos: true }),
    }));
    const expected = await colocated(model, reqs);
    await withModelWorkers(
      frontEnd,
      tiny.dir,
      { modelWorkers: 1, attentionWorkers: 2, pipelineDepth: 2, partition: "head" },
      async (core) => {
        const res = await runToCompletion(core, reqs);
        assert.deepEqual(
          [...res.values()].map((c) => c.tokens),
          expected,
        );
      },
    );
  });

  it("a front end without the sinks is refused, naming them", async () => {
    const bare = await loadModel(tiny.dir, { weights: false });
    await assert.rejects(
      withModelWorkers(bare, tiny.dir, { modelWorkers: 1, attentionWorkers: 1 }, async () => {}),
      /attention sinks model\.layers\.0\.self_attn\.sinks are not loaded/,
    );
  });
});

describe("gpt-oss checkpoints that do not match their config", () => {
  it("a missing or misshapen stacked expert tensor is named", async () => {
    const dir = path.join(tmp, "broken");
    const tiny = writeTinyModel(dir, "gpt-oss");
    const raw = [...tiny.weights.values()]
      .filter((t) => !/\.mlp\.experts\./.test(t.name))
      .map((t) => ({
        name: t.name,
        dtype: "F32",
        shape: [...t.shape],
        bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      }));
    writeRawSafetensors(path.join(dir, "model.safetensors"), raw);
    await assert.rejects(
      loadModel(dir),
      /missing tensor "model\.layers\.0\.mlp\.experts\.gate_up_proj_bias"/,
    );
    const E = 4;
    const bias = (name: string, shape: number[]) => ({
      name,
      dtype: "F32",
      shape,
      bytes: new Uint8Array(4 * shape.reduce((a, b) => a * b, 1)),
    });
    const p = "model.layers.0.mlp.experts";
    writeRawSafetensors(path.join(dir, "model.safetensors"), [
      ...raw,
      bias(`${p}.gate_up_proj_bias`, [E, 64]),
      bias(`${p}.down_proj_bias`, [E, 64]),
      bias(`${p}.gate_up_proj`, [E, 64, 63]),
    ]);
    await assert.rejects(
      loadModel(dir),
      /"model\.layers\.0\.mlp\.experts\.gate_up_proj" has shape \[4, 64, 63\].*\[4, 64, 64\]/,
    );
  });

  it("MXFP4 quantization is read for gpt_oss only", async () => {
    const dir = path.join(tmp, "llama-mxfp4");
    const tiny = writeTinyModel(dir, "llama-gqa");
    const config = JSON.parse(readFileSync(path.join(tiny.dir, "config.json"), "utf8"));
    writeFileSync(
      path.join(dir, "config.json"),
      JSON.stringify({ ...config, quantization_config: { quant_method: "mxfp4" } }),
    );
    await assert.rejects(
      loadModel(dir),
      /quant_method "mxfp4" is not supported \(fp8 is, and mxfp4 for gpt_oss/,
    );
  });
});
