// Long prompts on an in-process engine: prefill throughput with prompt attention in tiles of query
// tokens against the per-token kernel (the addon's setPromptTiles), alternating in the same run,
// medians of --reps. Random bf16 weights of the llama.cpp comparison's shapes (generated once
// under .lamina-cache/bench-models).
//
//   node dist/bench/engine/long-prompt.js [--shape smollm2-135m] [--prompt 512,2048,8192] [--reps 3] [--threads 2]
//                                         [--kv-dtype f16,int8] (default: the model's)
import path from "node:path";
import { fileURLToPath } from "node:url";
import { median } from "../../src/bench/stats.js";
import type { KvDType } from "../../src/kernels/backend.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { parseKvDtype } from "../../src/kernels/kv-cache.js";
import type { NativeBackend } from "../../src/kernels/native.js";
import { loadModel } from "../../src/model/load.js";
import { defaultKvDtype } from "../../src/placement/sizes.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag, intListFlag } from "../common/flags.js";
import { writeResults } from "../common/results.js";
import { BENCH_SHAPES, benchPrompt, benchShape, ensureBenchModelDir } from "../llamacpp/bench-models.js";
import { OursRunner } from "../llamacpp/ours.js";

const { values } = benchArgs({
  options: {
    shape: { type: "string", default: "smollm2-135m" },
    prompt: { type: "string", default: "512,2048,8192" },
    reps: { type: "string", default: "3" },
    threads: { type: "string", default: "2" },
    "kv-dtype": { type: "string" },
  },
});
const shape = benchShape(values.shape, "shape");
const prompts = intListFlag(values.prompt, "prompt");
const reps = intFlag(values.reps, "reps");
const threads = intFlag(values.threads, "threads");
const maxPositions = (BENCH_SHAPES[shape] as { max_position_embeddings: number }).max_position_embeddings;
for (const p of prompts)
  if (p + 1 > maxPositions)
    throw new Error(`--prompt ${p}: ${shape} takes at most ${maxPositions - 1} prompt tokens`);

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const log = (line: string) => process.stderr.write(`${line}\n`);
const dir = ensureBenchModelDir(path.join(root, ".lamina-cache", "bench-models"), shape, "bf16", log);
const model = await loadModel(dir);
const backend = loadKernelBackend({ backend: "native", threads }) as NativeBackend;
const kvDtypes: (KvDType | undefined)[] = values["kv-dtype"]
  ? values["kv-dtype"].split(",").map((d) => parseKvDtype(d, "--kv-dtype"))
  : [undefined];

interface Row {
  kvDtype: string;
  prompt: number;
  tiledTokPerS: number;
  perTokenTokPerS: number;
  /** tiled / per-token prefill throughput */
  speedup: number;
}
const rows: Row[] = [];
try {
  for (const kvDtype of kvDtypes)
    for (const len of prompts) {
      const runner = new OursRunner(model, backend, kvDtype ? { kvDtype } : {});
      const prompt = benchPrompt(len, 99);
      const tiled: number[] = [];
      const perToken: number[] = [];
      backend.setPromptTiles(true);
      await runner.prefill(prompt); // warm-up: pages of the KV pool and scratch
      for (let r = 0; r < reps; r++)
        for (const on of [true, false]) {
          backend.setPromptTiles(on);
          (on ? tiled : perToken).push(await runner.prefill(prompt));
        }
      const t = median(tiled);
      const p = median(perToken);
      const kv = kvDtype ?? defaultKvDtype(model);
      rows.push({ kvDtype: kv, prompt: len, tiledTokPerS: t, perTokenTokPerS: p, speedup: t / p });
      log(`${kv} ${len}: tiled ${t.toFixed(0)} tok/s, per-token ${p.toFixed(0)} tok/s`);
    }
} finally {
  backend.setPromptTiles(true);
}

console.log(`${cpuModel()}; ${backend.describe()}; ${shape} (bf16, random weights), medians of ${reps}`);
console.log("KV   | prompt tokens | tiled prefill tok/s | per-token prefill tok/s | tiled / per-token");
for (const r of rows)
  console.log(
    [
      r.kvDtype.padEnd(4),
      String(r.prompt).padStart(13),
      r.tiledTokPerS.toFixed(0).padStart(19),
      r.perTokenTokPerS.toFixed(0).padStart(23),
      `${r.speedup.toFixed(2)}×`.padStart(17),
    ].join(" | "),
  );
writeResults(`engine-long-prompt-${shape}.json`, {
  cpu: cpuModel(),
  backend: backend.describe(),
  shape,
  reps,
  rows,
});
