// Single-stream decode of a Gemma-2-shaped model (window layers among global ones, the
// query_pre_attn_scalar scale, score and logit soft-caps) with its attention on one spawned
// attention worker: over the native data plane (per-layer settings given to the loop once, the
// window pool's tables in every STEP) against the same exchange over messages, each against
// in-process attention measured in the same run as the limit. Random bf16 weights.
//
//   node dist/bench/disagg/window-data-plane.js [--gen 48] [--prompt 192] [--reps 3] [--window 64]
//
// Prints a table and writes bench/results/window-data-plane.json.
import { availableParallelism, cpus, tmpdir } from "node:os";
import path from "node:path";
import { RemoteAttentionService } from "../../src/attention/remote-service.js";
import { median } from "../../src/bench/stats.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import { SpawnedWorker } from "../../src/placement/attention-worker-endpoints.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import { BYTE_BOS, BYTE_EOS, BYTE_VOCAB } from "../common/byte-tokenizer.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { writeRandomModelDir } from "../common/random-model.js";
import { writeResults } from "../common/results.js";
import { benchPrompt } from "./bench-model.js";
import { canPin, pinProcess, pinSelf } from "./worker-proc.js";

const { values } = benchArgs({
  options: {
    gen: { type: "string", default: "48" },
    prompt: { type: "string", default: "192" },
    reps: { type: "string", default: "3" },
    window: { type: "string", default: "64" },
  },
});
const gen = intFlag(values.gen, "gen", 8);
const promptLength = intFlag(values.prompt, "prompt", 2);
const reps = intFlag(values.reps, "reps", 1);
const window = intFlag(values.window, "window", 1);

const cores = availableParallelism();
const pinned = canPin(cores);
if (pinned) pinSelf(0);
const backend = loadKernelBackend({ backend: "native", threads: 1 });
const variant = backend.describe();

const LAYERS = 12;
const config = {
  architectures: ["Gemma2ForCausalLM"],
  model_type: "gemma2",
  vocab_size: BYTE_VOCAB,
  hidden_size: 512,
  intermediate_size: 1536,
  num_hidden_layers: LAYERS,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 64,
  max_position_embeddings: 1024,
  hidden_activation: "gelu_pytorch_tanh",
  rms_norm_eps: 1e-6,
  rope_theta: 10000.0,
  query_pre_attn_scalar: 64,
  attn_logit_softcapping: 50.0,
  final_logit_softcapping: 30.0,
  sliding_window: window,
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: BYTE_BOS,
  eos_token_id: BYTE_EOS,
  pad_token_id: 0,
  torch_dtype: "bfloat16",
};
const dir = path.join(tmpdir(), "lamina-bench-models", `gemma2-h512-l${LAYERS}-w${window}-bf16`);
writeRandomModelDir(dir, config, "bf16", 4243);
const model = await loadModel(dir);

type Placement = "in-process" | "native" | "messages";

async function decode(placement: Placement): Promise<number> {
  // One token a step (no speculative decoding): the exchange per token is what is measured.
  const opts = { maxRunning: 1, maxTokensPerStep: 256, pipelineDepth: 1, speculativeTokens: 0 };
  const w =
    placement === "in-process"
      ? null
      : new SpawnedWorker("bench", { transport: "shm", kvMemory: 256 << 20, threads: 1, log: () => {} });
  const svc = w
    ? await RemoteAttentionService.connect([w], {
        partition: "head",
        geometry: resolveSizes(model, opts).geometry,
        kvMemory: null,
        microBatches: 1,
        dataPlane: placement === "native",
      })
    : undefined;
  if (w?.pid && pinned) pinProcess(w.pid, 1);
  try {
    if (svc && (svc.drive !== null) !== (placement === "native"))
      throw new Error(`the worker did not take the ${placement} exchange`);
    const core = buildColocatedEngine(model, backend, opts, svc);
    const params = resolveSamplingParams({ temperature: 0, maxTokens: gen, ignoreEos: true });
    core.add({ id: "s", promptTokenIds: benchPrompt(promptLength, 0), params });
    let t0 = 0;
    let tokens = 0;
    let first = true;
    while (core.hasWork) {
      const n = (await core.runStep()).reduce((a, e) => a + e.tokenIds.length, 0);
      if (first && n > 0) {
        first = false;
        t0 = performance.now();
        continue;
      }
      tokens += n;
    }
    return tokens / ((performance.now() - t0) / 1000);
  } finally {
    await svc?.close();
  }
}

const runs: Record<Placement, number[]> = { "in-process": [], native: [], messages: [] };
for (let r = 0; r < reps; r++)
  for (const p of ["in-process", "native", "messages"] as const) runs[p].push(await decode(p));

const local = median(runs["in-process"]);
console.log(
  `\nCPU: ${cpus()[0]?.model ?? "?"}, ${cores} cores${pinned ? " (model side and worker pinned apart)" : ""}; ${variant}`,
);
console.log(
  `single-stream decode of ${gen} tokens after a ${promptLength}-token prompt, Gemma-2 shape (${LAYERS} layers, window ${window} on every other), model side 1 thread, median of ${reps}:`,
);
console.log("| attention | decode tok/s | × in-process | added per layer µs |");
console.log("| --- | ---: | ---: | ---: |");
for (const p of ["in-process", "native", "messages"] as const) {
  const t = median(runs[p]);
  const added = ((1 / t - 1 / local) / LAYERS) * 1e6;
  console.log(
    `| ${p} | ${t.toFixed(1)} | ${(t / local).toFixed(2)} | ${p === "in-process" ? "–" : added.toFixed(1)} |`,
  );
}
writeResults("window-data-plane.json", {
  machine: { cpu: cpus()[0]?.model ?? "?", cores, pinned, variant },
  shape: { layers: LAYERS, hidden: 512, heads: 8, kvHeads: 4, headDim: 64, window },
  gen,
  prompt: promptLength,
  reps,
  tokPerS: runs,
});
