// What speculative decoding by prompt lookup buys and costs, on in-process engines with the
// default kernels and threads: decode tokens a second with --speculative-tokens K against the same
// engine decoding one token a step (speculativeTokens 0), timed alternating, medians of --reps:
//  - SmolLM2-135M's shape, random bf16 weights, greedy: a random model's greedy reply falls into a
//    loop, which prompt lookup predicts (the case of replies that copy from their context); the
//    same weights at Q4_K_M (a GGUF file the bench writes once), where a step reads 3.5x fewer bytes;
//  - the same at temperature 1: replies that rarely repeat, so few drafts are proposed (the cost
//    where speculation finds nothing);
//  - stories260K (a trained model) telling stories, greedy: names and phrases repeat as they do in
//    text (one sequence, then 4);
//  - SmolLM2's shape with attention on one spawned attention worker: a step with drafts crosses
//    the per-layer exchange once for all its tokens.
// Each row also gives the share of draft tokens kept, the tokens a step, and whether the replies
// equal those of one token a step (greedy; seeded at temperature 1). Last, the time a lookup takes
// where nothing matches (1k, 8k and 32k tokens scanned) against a plain step.
//
//   node dist/bench/engine/speculative.js [--tokens 3] [--gen 256] [--reps 5]
import { existsSync, mkdirSync, renameSync } from "node:fs";
import path from "node:path";
import { median } from "../../src/bench/stats.js";
import { modelToGguf } from "../../src/convert/to-gguf.js";
import type { GenerateRequest } from "../../src/engine/api.js";
import type { EngineCore } from "../../src/engine/engine-core.js";
import { proposeDrafts } from "../../src/engine/ngram-drafts.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { Sequence } from "../../src/engine/sequence.js";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine, buildEngine } from "../../src/placement/build.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { RESULTS_DIR, writeResults } from "../common/results.js";
import { benchPrompt, ensureBenchModel } from "../disagg/bench-model.js";

const { values } = benchArgs({
  options: {
    tokens: { type: "string", default: "3" },
    gen: { type: "string", default: "256" },
    reps: { type: "string", default: "5" },
  },
});
const K = intFlag(values.tokens, "tokens");
const gen = intFlag(values.gen, "gen");
const reps = intFlag(values.reps, "reps");

const root = path.join(RESULTS_DIR, "models");
mkdirSync(root, { recursive: true });
const smol = await loadModel(
  ensureBenchModel(root, {
    hidden: 576,
    layers: 30,
    heads: 9,
    kvHeads: 3,
    intermediate: 1536,
    maxPositions: 4096,
    dtype: "bf16",
  }),
);
// The same weights as llama.cpp's Q4_K_M mix (what people serve on CPUs), converted once.
const smolQ4 = await loadModel(smolGguf());
const stories = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
const backend = loadKernelBackend({ backend: "native" });

const STORY_STARTS = [
  "Once upon a time, there was a little girl named Lily.",
  "Tom had a big red ball.",
  "One day, a cat and a dog went to the park.",
  "Sue liked to sing.",
];

interface Case {
  what: string;
  model: LoadedModel;
  requests: (rep: number) => GenerateRequest[];
  /** Attention on one spawned attention worker (shared memory) instead of in-process. */
  worker?: boolean;
}

const smolRequests = (n: number, temperature: number) => (rep: number) =>
  Array.from({ length: n }, (_, i) => ({
    id: `s${i}`,
    promptTokenIds: benchPrompt(64, 100 * rep + i),
    params: resolveSamplingParams({ temperature, seed: 7 + 100 * rep + i, maxTokens: gen, ignoreEos: true }),
  }));
const storyRequests = (n: number) => (rep: number) =>
  Array.from({ length: n }, (_, i) => ({
    id: `t${i}`,
    promptTokenIds: stories.tokenizer.encode(STORY_STARTS[(rep + i) % STORY_STARTS.length]!),
    params: resolveSamplingParams({ temperature: 0, maxTokens: gen, ignoreEos: true }),
  }));

const CASES: Case[] = [
  { what: "SmolLM2-135M shape, random bf16, greedy, 1 sequence", model: smol, requests: smolRequests(1, 0) },
  { what: "the same, 4 sequences", model: smol, requests: smolRequests(4, 0) },
  { what: "the same at Q4_K_M, 1 sequence", model: smolQ4, requests: smolRequests(1, 0) },
  { what: "the same at Q4_K_M, 2 sequences", model: smolQ4, requests: smolRequests(2, 0) },
  { what: "the same at Q4_K_M, 4 sequences", model: smolQ4, requests: smolRequests(4, 0) },
  {
    what: "the same, 1 sequence, attention on 1 worker (shm)",
    model: smol,
    requests: smolRequests(1, 0),
    worker: true,
  },
  { what: "the same, temperature 1, 1 sequence", model: smol, requests: smolRequests(1, 1) },
  { what: "stories260K, greedy, 1 sequence", model: stories, requests: storyRequests(1) },
  { what: "stories260K, greedy, 4 sequences", model: stories, requests: storyRequests(4) },
];

/** SmolLM2's shape as a Q4_K_M GGUF file beside the bf16 model (written on the first run). */
function smolGguf(): string {
  const file = path.join(root, "speculative-smollm2-shape-q4_k_m.gguf");
  if (!existsSync(file)) {
    modelToGguf(smol, `${file}.partial`, { quantize: "q4_k_m" });
    renameSync(`${file}.partial`, file);
  }
  return file;
}

/** Decodes the requests to the end; seconds after the first token of each, tokens, steps, drafts. */
async function run(core: EngineCore, reqs: GenerateRequest[]) {
  const before = core.stats();
  const tokens = new Map<string, number[]>();
  for (const r of reqs) {
    core.add(r);
    tokens.set(r.id, []);
  }
  let t0 = 0;
  let first = 0;
  while (core.hasWork)
    for (const ev of await core.runStep()) {
      const t = tokens.get(ev.requestId)!;
      if (t.length === 0 && ev.tokenIds.length > 0 && ++first === reqs.length) t0 = performance.now();
      t.push(...ev.tokenIds);
    }
  const seconds = (performance.now() - t0) / 1000;
  const after = core.stats();
  return {
    seconds,
    // Tokens decoded after every sequence had its first one.
    decoded: reqs.length * (gen - 1),
    tokens: [...tokens.values()],
    steps: after.timing.steps - before.timing.steps,
    drafted: after.speculation.draftTokens - before.speculation.draftTokens,
    kept: after.speculation.acceptedTokens - before.speculation.acceptedTokens,
  };
}

const rows = [];
for (const c of CASES) {
  const options = { maxRunning: 8, maxModelLen: 4096, pipelineDepth: 1 };
  const engine = (speculativeTokens: number) =>
    c.worker
      ? buildEngine(c.model, backend, {
          ...options,
          speculativeTokens,
          attentionWorkers: 1,
          transport: "shm",
        })
      : buildColocatedEngine(c.model, backend, { ...options, speculativeTokens });
  const on = await engine(K);
  const off = await engine(0);
  await run(on, c.requests(99)); // warm-up: first calls of the kernels
  await run(off, c.requests(99));
  const rateOn: number[] = [];
  const rateOff: number[] = [];
  let same = true;
  let drafted = 0;
  let kept = 0;
  let stepsOn = 0;
  let generated = 0;
  for (let rep = 0; rep < reps; rep++) {
    const a = await run(on, c.requests(rep));
    const b = await run(off, c.requests(rep));
    rateOn.push(a.decoded / a.seconds);
    rateOff.push(b.decoded / b.seconds);
    same &&= JSON.stringify(a.tokens) === JSON.stringify(b.tokens);
    drafted += a.drafted;
    kept += a.kept;
    stepsOn += a.steps;
    generated += a.tokens.reduce((n, t) => n + t.length, 0);
  }
  rows.push({
    what: c.what,
    on: median(rateOn),
    off: median(rateOff),
    keptShare: drafted > 0 ? kept / drafted : 0,
    tokensPerStep: generated / stepsOn / c.requests(0).length,
    same,
    rateOn,
    rateOff,
  });
  await on.attention.close();
  await off.attention.close();
  console.error(`${c.what}: done`);
}

const cpu = cpuModel();
const variant = backend.describe();
console.log(
  `speculative decoding by prompt lookup, ${K} draft tokens — ${cpu}, ${variant}, medians of ${reps}`,
);
console.log(
  "| case | on (tok/s) | off (tok/s) | on / off | drafts kept | tokens a step (each sequence) | same replies |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
for (const r of rows)
  console.log(
    `| ${r.what} | ${r.on.toFixed(1)} | ${r.off.toFixed(1)} | ${(r.on / r.off).toFixed(2)}× | ${(100 * r.keptShare).toFixed(0)}% | ${r.tokensPerStep.toFixed(2)} | ${r.same ? "yes" : "no"} |`,
  );

// What looking costs where nothing matches (the whole sequence scanned), against the plain
// engine's time per token on SmolLM2's shape, one sequence, in this run.
const plainStepUs = 1e6 / rows[0]!.off;
const lookups = [1024, 8192, 32768].map((length) => {
  // Token ids from a multiplicative hash: no 2-gram repeats, so no lookup finds a match.
  const prompt = Array.from({ length }, (_, i) => ((i * 2654435761) >>> 0) % 150_000);
  const seq = new Sequence(0, "lookup", prompt, resolveSamplingParams({ maxTokens: 16 }));
  const out: number[] = [];
  const time = () => {
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) proposeDrafts(seq, K, out);
    return ((performance.now() - t0) * 1000) / 100;
  };
  time(); // warm-up
  const us = median(Array.from({ length: reps }, time));
  return { length, us, shareOfPlainStep: us / plainStepUs };
});
console.log(
  `\nlookup with no match against a plain step on SmolLM2's shape (${plainStepUs.toFixed(0)} µs a token)`,
);
console.log("| sequence tokens | lookup (µs) | share of a plain step |");
console.log("| ---: | ---: | ---: |");
for (const l of lookups)
  console.log(`| ${l.length} | ${l.us.toFixed(1)} | ${(100 * l.shareOfPlainStep).toFixed(1)}% |`);
writeResults("speculative.json", { cpu, variant, draftTokens: K, gen, reps, rows, lookups });
