// Decode steps on the native data plane: in a step of decode tokens (one a sequence) the worker
// folds each token's own new key into the early pass's output (KernelTable::appendKey) instead of
// running a late pass over that key and merging it. Every decode step's logits must match the
// colocated engine's: several sequences a step, every KV dtype (an int8 cache's rows dequantized),
// head_dim 8 (stories260K: no full vector), GQA at head_dim 32, window layers (their own pool's
// slots), Gemma 2's soft-cap on bf16 weights.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { LocalAttentionService } from "../../src/attention/local-service.js";
import type { AttentionService } from "../../src/attention/service.js";
import { sliceModel } from "../../src/graph/converter.js";
import { buildLlamaGraph } from "../../src/graph/llama-graph.js";
import type { KvDType } from "../../src/kernels/backend.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import { SliceExecutor } from "../../src/runtime/executor.js";
import { createModelStep } from "../../src/runtime/step.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { remoteAttention } from "../helpers/attention-workers.js";
import { nativeBackend } from "../helpers/backends.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { attentionTakesBf16Dot, nativeKernels } from "../kernels/native-setup.js";

const backend = nativeBackend();
const tmp = mkdtempSync(path.join(tmpdir(), "lamina-decode-append-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const BLOCK = 4;
const DECODE_STEPS = 9;

/** Three prompts of different lengths, then DECODE_STEPS tokens each, fed the same in both runs. */
function inputs(vocab: number): { prompts: number[][]; decode: number[][] } {
  let x = 12345;
  const next = () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return 3 + (x % (vocab - 3));
  };
  const prompts = [5, 11, 2].map((n) => Array.from({ length: n }, next));
  const decode = Array.from({ length: DECODE_STEPS }, () => prompts.map(next));
  return { prompts, decode };
}

/** Each step's logits (one row a sequence): the prompts in one step, then one token a sequence a step. */
async function decodeLogits(
  model: LoadedModel,
  kvDtype: KvDType,
  service: AttentionService | null,
): Promise<Float32Array[]> {
  const { prompts, decode } = inputs(model.config.vocabSize);
  const S = prompts.length;
  const promptTokens = prompts.reduce((a, p) => a + p.length, 0);
  const sizes = resolveSizes(model, {
    maxRunning: S,
    maxTokensPerStep: promptTokens,
    blockSize: BLOCK,
    kvDtype,
  });
  const exec = new SliceExecutor(
    sliceModel(buildLlamaGraph(model.config)),
    model.weights,
    backend,
    model.config,
    {
      maxTokens: promptTokens,
      maxLogitRows: S,
      microBatches: 1,
    },
  );
  const attention = service ?? new LocalAttentionService(backend, sizes.geometry, 64);
  for (let s = 0; s < S; s++) assert.ok(attention.reserve(s + 1, prompts[s]!.length + DECODE_STEPS));
  const step = createModelStep(promptTokens, S, 0);
  const run = async (tokens: number[][], start: number[]): Promise<Float32Array> => {
    step.nSeqs = S;
    step.nTokens = 0;
    step.nLogits = S;
    for (let s = 0; s < S; s++) {
      step.seqIds[s] = s + 1;
      step.seqStart[s] = step.nTokens;
      for (const [i, t] of tokens[s]!.entries()) {
        step.tokens[step.nTokens] = t;
        step.positions[step.nTokens++] = start[s]! + i;
      }
      step.logitRows[s] = step.nTokens - 1;
    }
    step.seqStart[S] = step.nTokens;
    return Float32Array.from(await exec.forward(step, attention));
  };
  const out = [await run(prompts, [0, 0, 0])];
  for (const [d, tokens] of decode.entries())
    out.push(
      await run(
        tokens.map((t) => [t]),
        prompts.map((p) => p.length + d),
      ),
    );
  return out;
}

// `exact`: f32 weights, so the products take activations in fp32 and the two placements differ by
// summation order alone. A bf16 model's products round activations to bf16 (the AMX tiles, bf16
// dot products), where a sum that differs in its last bits can move an activation by one bf16 step.
const models: { name: string; exact: boolean; load: () => Promise<LoadedModel> }[] = [
  {
    name: "stories260K (head_dim 8: no full vector)",
    exact: true,
    load: async () => loadModel(path.join(sharedDataPath("models", "stories260K"), "hf")),
  },
  {
    name: "tiny qwen3 (GQA, head_dim 32)",
    exact: true,
    load: async () => loadModel(writeTinyModel(path.join(tmp, "qwen3"), "qwen3").dir),
  },
  {
    name: "tiny gemma3 (window layers: the window pool's slots)",
    exact: true,
    load: async () => loadModel(writeTinyModel(path.join(tmp, "gemma3"), "gemma3").dir),
  },
  {
    name: "tiny gemma2 (soft-cap, bf16 weights)",
    exact: false,
    load: async () => loadModel(writeTinyModel(path.join(tmp, "gemma2"), "gemma2").dir),
  },
];

/**
 * How far a logit may move, relative to the step's largest: fp32 sums in another order (16-bit
 * rows somewhat more), one bf16 step of an activation for a bf16 model, the colocated kernel's bf16
 * probabilities where decode attention takes bf16 dot products (both, for a bf16 model on a bf16
 * cache), and an int8 cache's queries, which the colocated kernel rounds to 8 bits and the fold
 * does not.
 */
function tolerance(exact: boolean, kvDtype: KvDType, c: LoadedModel["config"]): number {
  if (kvDtype === "int8") return 3e-2;
  const bf16Dot = attentionTakesBf16Dot(nativeKernels(), kvDtype, c.numHeads, c.numKvHeads, c.headDim);
  // Both roundings at once (a bf16 model on a bf16 cache through vdpbf16ps): the colocated engine's
  // own widening and vdpbf16ps builds differ by up to 1.1% of the largest logit on tiny gemma2.
  if (!exact) return bf16Dot ? 1e-2 + 2 ** -7 : 1e-2;
  if (bf16Dot) return 2 ** -7;
  return kvDtype === "f32" ? 1e-5 : 1e-4;
}

for (const { name, exact, load } of models) {
  describe(`${name}: decode steps on the data plane equal colocated`, async () => {
    const model = await load();
    const c = model.config;
    for (const kvDtype of ["f32", "bf16", "f16", "int8"] as const) {
      it(`${kvDtype} KV`, async () => {
        const local = await decodeLogits(model, kvDtype, null);
        const { service, workers } = await remoteAttention(model, backend, {
          workers: 1,
          partition: "head",
          transport: "shm",
          depth: 1,
          blockSize: BLOCK,
          maxRunning: 3,
          maxTokensPerStep: 18,
          kvDtype,
        });
        try {
          assert.notEqual(service.drive, null, "exchange on the native data plane");
          const remote = await decodeLogits(model, kvDtype, service);
          const rtol = tolerance(exact, kvDtype, c);
          for (const [i, want] of local.entries()) {
            const got = remote[i]!;
            const scale = Math.max(...want.map(Math.abs));
            for (let j = 0; j < want.length; j++)
              assert.ok(
                Math.abs(got[j]! - want[j]!) <= rtol * scale,
                `step ${i} logit ${j}: ${got[j]} against ${want[j]} (scale ${scale})`,
              );
          }
          for (const s of await service.workerStats()) assert.ok(s, "the worker stayed up");
        } finally {
          await service.close();
          for (const w of workers) await w.close();
        }
      });
    }
  });
}
