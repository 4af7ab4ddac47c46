import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { LocalAttentionService } from "../../src/attention/local-service.js";
import type { KernelBackend } from "../../src/kernels/backend.js";
import { NativeBackend } from "../../src/kernels/native.js";
import { loadModel } from "../../src/model/load.js";
import type { DType } from "../../src/model/tensor.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import { engineBackends } from "../helpers/backends.js";
import { generateAlone, greedy, logitsAllPositions, runToCompletion } from "../helpers/engine-driver.js";
import { referenceLogits } from "../helpers/reference-forward.js";
import { TINY_VARIANTS, writeTinyModel } from "../helpers/tiny-models.js";

const root = mkdtempSync(path.join(tmpdir(), "lamina-tiny-"));
after(() => rmSync(root, { recursive: true, force: true }));

const prompt = [256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33];

/**
 * Worst |engine − reference| allowed, as a fraction of the largest |reference logit|, by KV-cache
 * dtype. The reference reads the same rounded weights, so bf16 and f16 weights add no error of
 * their own: with an f32 cache only f32 arithmetic is left (measured at most 6.1e-7 on every
 * variant with either backend; 1e-5 leaves room for other summation orders). A narrower cache
 * stores K and V rounded to its dtype (unit roundoff 2^-11 ≈ 4.9e-4 for f16, 2^-8 ≈ 3.9e-3 for
 * bf16), measured at most 3.8e-4 (f16) and 2.8e-3 (bf16) of the largest logit.
 */
const TOLERANCE: Record<DType, number> = { f32: 1e-5, f16: 2e-3, bf16: 1e-2 };

/**
 * A kernel variant with bf16 dot products (avx512bf16: vdpbf16ps) multiplies bf16 weights by the
 * activations rounded to bf16, unit roundoff 2^-8 as a bf16 cache's (measured at most 3.7e-3 of
 * the largest logit on these models): bf16 models on it get the bf16 cache's bound, whatever the
 * cache.
 */
function tolerance(
  kvDtype: DType,
  backend: KernelBackend,
  weights: ReadonlyMap<string, { dtype: string }>,
): number {
  const bf16Weights = [...weights.values()].some((t) => t.dtype === "bf16");
  const rounds = backend instanceof NativeBackend && backend.info().bf16Dot;
  return bf16Weights && rounds ? Math.max(TOLERANCE[kvDtype], TOLERANCE.bf16) : TOLERANCE[kvDtype];
}

/** Logits at every prompt position through the real executor, over a KV cache of `kvDtype`. */
function engineLogits(model: LoadedModel, backend: KernelBackend, kvDtype: DType): Promise<Float32Array[]> {
  const n = prompt.length;
  const sizes = resolveSizes(model, {
    maxRunning: n,
    maxTokensPerStep: n,
    blockSize: 4,
    kvBlocks: Math.ceil(n / 4) + 1,
    kvDtype,
  });
  const attention = new LocalAttentionService(backend, sizes.geometry, sizes.numBlocks);
  return logitsAllPositions(model, backend, prompt, 4, attention);
}

for (const { name: backendName, backend } of engineBackends()) {
  for (const variant of TINY_VARIANTS) {
    describe(`tiny ${variant} model (${backendName} kernels)`, async () => {
      const tiny = writeTinyModel(path.join(root, `${variant}-${backendName}`), variant);
      const model = await loadModel(tiny.dir);
      let ref: Float64Array[] | undefined;

      // MXFP4 experts multiply activations rounded to 8 bits, which a float64 reference does not:
      // gpt-oss.test.ts checks that model's tokens against the reference instead.
      for (const kvDtype of variant === "gpt-oss-mxfp4" ? [] : (["f32", "f16", "bf16"] as const)) {
        const tol = tolerance(kvDtype, backend, tiny.weights);
        it(`logits over a ${kvDtype} KV cache match a float64 reference within ${tol} of the largest`, async () => {
          // The weights as written: ERNIE 4.5's and GLM-4's q/k rows in the interleaved pairs their RoPE rotates.
          ref ??= referenceLogits(model.config, tiny.weights, prompt, {
            interleavedQk: variant.startsWith("ernie4_5") || variant === "glm4",
          });
          const got = await engineLogits(model, backend, kvDtype);
          for (let pos = 0; pos < prompt.length; pos++) {
            const r = ref[pos]!;
            const scale = Math.max(...r.map(Math.abs), 1e-6);
            let worst = 0;
            for (let i = 0; i < r.length; i++) worst = Math.max(worst, Math.abs(got[pos]![i]! - r[i]!));
            assert.ok(
              worst <= tol * scale,
              `position ${pos}: max |diff| ${worst.toExponential(3)} > ${tol} × ${scale.toFixed(3)}`,
            );
          }
        });
      }

      it("batched generation gives the same tokens as generating each alone", async () => {
        const prompts = [prompt, prompt.slice(0, 5), [256, 84, 104, 101, 32, 101, 110, 100]];
        const alone: number[][] = [];
        for (const p of prompts) alone.push(await generateAlone(model, backend, p, 10, { blockSize: 4 }));
        // A small token budget forces chunked prefill to interleave with decoding.
        const core = buildColocatedEngine(model, backend, {
          blockSize: 4,
          maxTokensPerStep: 6,
          maxRunning: 4,
        });
        const res = await runToCompletion(
          core,
          prompts.map((p, i) => ({
            id: `r${i}`,
            promptTokenIds: p,
            params: greedy(10, { ignoreEos: true }),
          })),
        );
        for (let i = 0; i < prompts.length; i++)
          assert.deepEqual(res.get(`r${i}`)!.tokens, alone[i], `request ${i}`);
        assert.equal(core.attention.usage()[0]!.usedBlocks, 0, "every KV block is freed");
      });
    });
  }
}

describe("Gemma's √hidden embedding scale, rounded (safetensors) or exact (GGUF)", async () => {
  const backend = engineBackends()[0]!.backend;
  // bf16 at hidden 48: √48 = 6.928… rounds to 6.9375 in bf16, so the two differ by 0.13%.
  const tiny = writeTinyModel(path.join(root, "gemma2-scale"), "gemma2");
  const rounded = await loadModel(tiny.dir);
  const exact: LoadedModel = { ...rounded, config: { ...rounded.config, embedScaleExact: true } };

  it("each follows the float64 reference of its own rule, and the two differ", async () => {
    const outs: Float32Array[][] = [];
    for (const model of [rounded, exact]) {
      const ref = referenceLogits(model.config, model.weights, prompt);
      const got = await engineLogits(model, backend, "f32");
      const tol = tolerance("f32", backend, tiny.weights);
      for (let pos = 0; pos < prompt.length; pos++) {
        const r = ref[pos]!;
        const scale = Math.max(...r.map(Math.abs), 1e-6);
        for (let i = 0; i < r.length; i++)
          assert.ok(Math.abs(got[pos]![i]! - r[i]!) <= tol * scale, `position ${pos}, logit ${i}`);
      }
      outs.push(got);
    }
    let moved = 0;
    for (let i = 0; i < outs[0]![0]!.length; i++)
      moved = Math.max(moved, Math.abs(outs[0]![0]![i]! - outs[1]![0]![i]!));
    assert.ok(moved > 1e-4, `the exact scale changes the logits (max |diff| ${moved})`);
  });
});
