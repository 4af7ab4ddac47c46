// What prefix caching buys and what it costs, on an in-process engine (SmolLM2-135M's shape,
// random bf16 weights, the default kernels and threads):
//  - time to first token of a prompt seen before (all its whole blocks cached) against the same
//    prompt computed in full, the ideal being the tokens computed: P / (P - cached);
//  - a multi-turn conversation (each turn's prompt is the last one, its reply and a new message)
//    with caching on against off;
//  - the cost where nothing is cached (hashing and lookups): a new prompt, on against off;
//  - four requests with one new prompt at once (n = 4): computed once, the others waiting for it.
// Each pair is timed alternating, medians of --reps. Both engines' KV pools (--kv-blocks) are
// written through once first: a cache that keeps blocks walks its whole pool before it reuses one,
// and the first write of each page costs a fault, once in a server's life.
//
//   node dist/bench/engine/prefix-cache.js [--prompt 2048] [--turns 6] [--reps 5] [--block-size 64] [--kv-blocks 256]
//     [--window 512]  (Gemma 3's layers: 5 of every 6 within the window, their KV in a pool of their own)
import { mkdirSync } from "node:fs";
import path from "node:path";
import { median } from "../../src/bench/stats.js";
import type { GenerateRequest } from "../../src/engine/api.js";
import type { EngineCore } from "../../src/engine/engine-core.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { RESULTS_DIR, writeResults } from "../common/results.js";
import { benchPrompt, ensureBenchModel } from "../disagg/bench-model.js";

const { values } = benchArgs({
  options: {
    prompt: { type: "string", default: "2048" },
    turns: { type: "string", default: "6" },
    reps: { type: "string", default: "5" },
    "block-size": { type: "string", default: "64" },
    "kv-blocks": { type: "string", default: "256" },
    // Window layers as Gemma 3 has them (5 of every 6 attending within --window keys), whose KV
    // lives in a block pool of its own: 0 for none (a Llama).
    window: { type: "string", default: "0" },
  },
});
const window = intFlag(values.window, "window", 0);
const P = intFlag(values.prompt, "prompt");
const turns = intFlag(values.turns, "turns");
const reps = intFlag(values.reps, "reps");
const blockSize = intFlag(values["block-size"], "block-size");
const kvBlocks = intFlag(values["kv-blocks"], "kv-blocks");
const TURN_USER = 96;
const TURN_REPLY = 32;

const root = path.join(RESULTS_DIR, "models");
mkdirSync(root, { recursive: true });
const dir = ensureBenchModel(root, {
  hidden: 576,
  layers: 30,
  heads: 9,
  kvHeads: 3,
  intermediate: 1536,
  maxPositions: Math.max(4096, P + turns * (TURN_USER + TURN_REPLY) + 64),
  dtype: "bf16",
  ...(window > 0 ? { window: { size: window, every: 6 } } : {}),
});
const model = await loadModel(dir);
const backend = loadKernelBackend({ backend: "native" });
const engine = (prefixCaching: boolean) =>
  buildColocatedEngine(model, backend, {
    blockSize,
    prefixCaching,
    maxRunning: 8,
    kvBlocks,
    speculativeTokens: 0,
  });
const on = engine(true);
const offEngine = engine(false);

let nextId = 0;
function request(prompt: number[], maxTokens: number): GenerateRequest {
  return {
    id: `r${nextId++}`,
    promptTokenIds: prompt,
    params: resolveSamplingParams({ temperature: 0, maxTokens, ignoreEos: true }),
  };
}

/** Seconds to the first token of `prompt`, and the whole reply once it ends. */
async function run(core: EngineCore, prompt: number[], maxTokens: number) {
  const r = request(prompt, maxTokens);
  const t0 = performance.now();
  core.add(r);
  let ttft = 0;
  const tokens: number[] = [];
  let cached = 0;
  while (core.hasWork)
    for (const ev of await core.runStep()) {
      if (ev.cachedTokens !== undefined) cached = ev.cachedTokens;
      if (ttft === 0 && ev.tokenIds.length > 0) ttft = (performance.now() - t0) / 1000;
      tokens.push(...ev.tokenIds);
    }
  return { ttft, seconds: (performance.now() - t0) / 1000, tokens, cached };
}

// Warm-up: kernels' first calls, and every page of both KV pools written once (distinct prompts
// fill the caching engine's pool; the other's takes the same blocks each time, so it is written
// through with prompts that run together).
for (let i = 0; i * P < kvBlocks * blockSize; i++) await run(on, benchPrompt(P, 2000 + i), 1);
{
  const together = Math.max(1, Math.min(8, Math.floor((kvBlocks * blockSize) / P)));
  const reqs = Array.from({ length: together }, (_, i) => request(benchPrompt(P, 3000 + i), 1));
  for (const r of reqs) offEngine.add(r);
  while (offEngine.hasWork) await offEngine.runStep();
}

// 1. A prompt seen before against the same prompt in full.
const repeat = { warm: [] as number[], full: [] as number[], cached: 0 };
for (let i = 0; i < reps; i++) {
  const prompt = benchPrompt(P, 100 + i);
  await run(on, prompt, 1); // puts it in the cache
  const warm = await run(on, prompt, 1);
  const full = await run(offEngine, prompt, 1);
  repeat.warm.push(warm.ttft);
  repeat.full.push(full.ttft);
  repeat.cached = warm.cached;
}

// 2. Where nothing is cached: a new prompt, caching on against off.
const miss = { on: [] as number[], off: [] as number[] };
for (let i = 0; i < reps; i++) {
  miss.on.push((await run(on, benchPrompt(P, 500 + i), 1)).ttft);
  miss.off.push((await run(offEngine, benchPrompt(P, 700 + i), 1)).ttft);
}

// 3. Four requests with one prompt at once (n = 4 choices): seconds until every one has a token.
async function together(core: EngineCore, prompt: number[], n: number) {
  const reqs = Array.from({ length: n }, () => request(prompt, 1));
  const t0 = performance.now();
  for (const r of reqs) core.add(r);
  while (core.hasWork) await core.runStep();
  return (performance.now() - t0) / 1000;
}
const burst = { on: [] as number[], off: [] as number[] };
for (let i = 0; i < reps; i++) {
  burst.on.push(await together(on, benchPrompt(P, 1300 + i), 4));
  burst.off.push(await together(offEngine, benchPrompt(P, 1300 + i), 4));
}

// 4. A conversation: each turn sends the whole transcript again.
async function conversation(core: EngineCore, salt: number) {
  let transcript = benchPrompt(P / 2, salt);
  let seconds = 0;
  let cached = 0;
  for (let t = 0; t < turns; t++) {
    transcript = transcript.concat(benchPrompt(TURN_USER, salt * 31 + t).slice(1));
    const r = await run(core, transcript, TURN_REPLY);
    seconds += r.seconds;
    cached += r.cached;
    transcript = transcript.concat(r.tokens);
  }
  return { seconds, cached };
}
const chat = { on: [] as number[], off: [] as number[], cached: 0 };
for (let i = 0; i < reps; i++) {
  const a = await conversation(on, 900 + i);
  chat.on.push(a.seconds);
  chat.cached = a.cached;
  chat.off.push((await conversation(offEngine, 900 + i)).seconds);
}

const rows = [
  {
    what: `TTFT, ${P}-token prompt seen before (${repeat.cached} tokens cached)`,
    on: median(repeat.warm),
    off: median(repeat.full),
    ideal: P / (P - repeat.cached),
  },
  {
    what: `TTFT, new ${P}-token prompt (nothing cached)`,
    on: median(miss.on),
    off: median(miss.off),
    ideal: 1,
  },
  {
    what: `4 requests with one new ${P}-token prompt at once, until each has a token`,
    on: median(burst.on),
    off: median(burst.off),
    // Tokens computed: 4 prompts against one and three tails past the cached whole blocks.
    ideal: (4 * P) / (P + 3 * (P - Math.floor((P - 1) / blockSize) * blockSize)),
  },
  {
    what: `${turns}-turn conversation from ${P / 2} tokens, ${TURN_REPLY}-token replies (${chat.cached} tokens cached)`,
    on: median(chat.on),
    off: median(chat.off),
    ideal: Number.NaN,
  },
];
const cpu = cpuModel();
const variant = backend.describe();
const layers = window > 0 ? `Gemma 3's window layers (${window} keys, 5 of 6)` : "every layer global";
console.log(
  `prefix caching — ${cpu}, ${variant}, ${kvBlocks} blocks of ${blockSize}, ${layers}, medians of ${reps}`,
);
console.log("| case | caching on (s) | off (s) | off / on | ideal |");
console.log("| --- | ---: | ---: | ---: | ---: |");
for (const r of rows)
  console.log(
    `| ${r.what} | ${r.on.toFixed(4)} | ${r.off.toFixed(4)} | ${(r.off / r.on).toFixed(2)}× | ${Number.isNaN(r.ideal) ? "–" : `${r.ideal.toFixed(2)}×`} |`,
  );
writeResults(window > 0 ? "prefix-cache-window.json" : "prefix-cache.json", {
  cpu,
  window,
  variant,
  prompt: P,
  turns,
  reps,
  blockSize,
  rows,
  repeat,
  miss,
  burst,
  chat,
});
