// The int8 KV cache end to end: logits against an f16 cache within a stated bound (both kernel
// backends), and the same greedy tokens in every placement that holds KV: in-process, attention
// workers over the native data plane (shared memory and TCP) and over messages, and prefill
// instances (PD and Adrenaline).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { LocalAttentionService } from "../../src/attention/local-service.js";
import { RemoteAttentionService } from "../../src/attention/remote-service.js";
import type { GenerateRequest } from "../../src/engine/api.js";
import type { KernelBackend, KvDType } from "../../src/kernels/backend.js";
import { NativeBackend } from "../../src/kernels/native.js";
import { ReferenceBackend } from "../../src/kernels/reference.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine, buildPdEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { InProcessWorker, remoteAttention } from "../helpers/attention-workers.js";
import { engineBackends, nativeBackend } from "../helpers/backends.js";
import { greedy, logitsAllPositions, runToCompletion } from "../helpers/engine-driver.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { inProcessPrefill } from "../pd/in-process-prefill.js";

const native = nativeBackend();
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-int8-kv-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * Worst |logit(int8 KV) − logit(f16 KV)| allowed, as a fraction of the largest |f16 logit|, per
 * model. An int8 element is off by at most half a step, 1/254 of the largest element of its
 * (token, KV head) row, where f16 is off by 2^-11 of itself: f16 is the near-exact side. So int8
 * is as coarse as bf16 (2^-9 of itself) only for a row's largest elements and coarser for the rest,
 * and a head of 8 elements (stories260K) has no others to average the error with; on the AVX-512
 * VNNI path queries are also rounded to int8 and each step's probabilities to 8 bits. Measured,
 * against an f32 cache, worst over the positions of the prompt below (native / reference kernels):
 * stories260K int8 3.1e-2 / 4.1e-2 (bf16: 6.1e-3), the tiny GQA model (head 16) int8 6.2e-3 /
 * 4.3e-3 (bf16: 4.7e-3 / 1.6e-3). The bounds are about 1.5× and 3× those.
 */
const INT8_VS_F16: Record<string, number> = { stories260K: 6e-2, "tiny llama-gqa": 2e-2 };

const PROMPTS = ["Once upon a time", "The little dog", "Lily and Ben went to the park and", "Tom"];

function requests(model: LoadedModel): GenerateRequest[] {
  return PROMPTS.map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: model.tokenizer.encode(p),
    params: greedy(20 + 2 * i, { ignoreEos: true }),
  }));
}

async function tokensOf(
  model: LoadedModel,
  backend: KernelBackend,
  o: EngineOptions,
  service?: RemoteAttentionService,
) {
  const res = await runToCompletion(buildColocatedEngine(model, backend, o, service), requests(model));
  return [...res.values()].map((c) => c.tokens);
}

function logitsOver(model: LoadedModel, backend: KernelBackend, tokens: number[], kvDtype: KvDType) {
  const n = tokens.length;
  const sizes = resolveSizes(model, {
    maxRunning: n,
    maxTokensPerStep: n,
    blockSize: 4,
    kvBlocks: n,
    kvDtype,
  });
  return logitsAllPositions(model, backend, tokens, 4, new LocalAttentionService(backend, sizes.geometry, n));
}

const SIZES: EngineOptions = { maxTokensPerStep: 16, maxRunning: 8, blockSize: 4, kvDtype: "int8" };

for (const source of ["stories260K", "tiny llama-gqa"] as const) {
  describe(`${source}: int8 KV cache`, async () => {
    const model =
      source === "stories260K"
        ? await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"))
        : await loadModel(writeTinyModel(path.join(tmp, "gqa"), "llama-gqa").dir);
    const expected = await tokensOf(model, native, SIZES);

    const bound = INT8_VS_F16[source]!;
    for (const { name, backend } of engineBackends()) {
      it(`logits within ${bound} of the largest of the f16 cache's (${name} kernels)`, async () => {
        const tokens = model.tokenizer.encode("Once upon a time there was a big red ball that rolled");
        const f16 = await logitsOver(model, backend, tokens, "f16");
        const i8 = await logitsOver(model, backend, tokens, "int8");
        let worstRatio = 0;
        for (let pos = 0; pos < tokens.length; pos++) {
          const scale = Math.max(...f16[pos]!.map(Math.abs));
          let worst = 0;
          for (let j = 0; j < f16[pos]!.length; j++)
            worst = Math.max(worst, Math.abs(i8[pos]![j]! - f16[pos]![j]!));
          worstRatio = Math.max(worstRatio, worst / scale);
          assert.ok(worst <= bound * scale, `position ${pos}: ${worst} > ${bound} × ${scale}`);
        }
        // Int8 does change the numbers: a cache that silently stored floats would pass the bound.
        assert.ok(worstRatio > 1e-5, `int8 logits equal f16's to ${worstRatio}`);
      });
    }

    for (const workers of [1, 2])
      for (const partition of ["head", "request"] as const)
        for (const transport of ["shm", "tcp"] as const)
          it(`greedy tokens on ${workers} attention worker(s), ${partition} partition, ${transport} data plane`, async () => {
            if (partition === "head" && model.config.numKvHeads % workers !== 0) return;
            const { service, workers: ws } = await remoteAttention(model, native, {
              workers,
              partition,
              transport,
              depth: 2,
              blockSize: 4,
              maxTokensPerStep: 16,
              maxRunning: 8,
              kvDtype: "int8",
            });
            try {
              assert.notEqual(service.drive, null, "exchange on the native data plane");
              assert.deepEqual(
                await tokensOf(model, native, { ...SIZES, pipelineDepth: 2 }, service),
                expected,
              );
            } finally {
              await service.close();
              for (const w of ws) await w.close();
            }
          });

    it("greedy tokens on an attention worker over messages (reference kernels on both sides)", async () => {
      const ref = new ReferenceBackend();
      const local = await tokensOf(model, ref, SIZES);
      const worker = new InProcessWorker("w0", ref, "tcp");
      const sizes = resolveSizes(model, SIZES);
      const service = await RemoteAttentionService.connect([worker], {
        partition: "request",
        geometry: sizes.geometry,
        kvMemory: null,
        microBatches: 2,
      });
      try {
        assert.equal(service.drive, null, "no data plane with reference kernels: messages");
        assert.deepEqual(await tokensOf(model, ref, SIZES, service), local);
      } finally {
        await service.close();
        await worker.close();
      }
    });

    for (const mode of ["pd", "adrenaline"] as const)
      it(`greedy tokens with prefill instances (${mode})`, async () => {
        const { opener, close } = inProcessPrefill(model, native, 16, 64 << 20, "shm");
        const o: EngineOptions = {
          ...SIZES,
          mode,
          prefillInstances: 1,
          ...(mode === "adrenaline" ? { offloadRatio: 1 } : {}),
        };
        const { core, attention } = await buildPdEngine(model, native, o, {
          log: () => {},
          prefillOpener: opener,
        });
        try {
          const res = await runToCompletion(core, requests(model));
          assert.deepEqual(
            [...res.values()].map((r) => r.tokens),
            expected,
          );
        } finally {
          await attention.close();
          await close();
        }
      });
  });
}

describe("the start-up log names how int8 KV is read", () => {
  // `lamina generate` on the built-in model with an int8 cache, once per kernel variant this CPU
  // can select (the stand-ins for CPUs without VNNI included): the line says which byte-product path
  // the in-process kernels read the cache through, as the addon reports it for that variant.
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
  const info = native instanceof NativeBackend ? native.info() : undefined;
  const variants = info ? [...info.supported, ...info.emulated.filter((v) => v.endsWith("-novnni"))] : [];
  for (const variant of variants)
    it(`${variant}`, { timeout: 60_000 }, () => {
      (native as NativeBackend).selectVariant(variant);
      const expected = (native as NativeBackend).info().int8Attention;
      (native as NativeBackend).selectVariant(info!.variant);
      const run = spawnSync(
        process.execPath,
        [
          path.join(repo, "bin", "lamina.js"),
          "generate",
          "--prompt",
          "Once",
          "--max-tokens",
          "2",
          "--kv-dtype",
          "int8",
        ],
        {
          cwd: tmp,
          encoding: "utf8",
          timeout: 60_000,
          env: { ...process.env, LAMINA_KERNEL_VARIANT: variant },
        },
      );
      assert.equal(run.status, 0, run.stderr);
      assert.match(
        run.stderr + run.stdout,
        new RegExp(`tokens of int8 \\(read through ${expected}\\) in blocks of`),
      );
    });
});
