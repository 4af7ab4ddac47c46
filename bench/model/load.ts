// Model start-up times: how long each kind of model takes to be ready in memory (weights,
// config and tokenizer). The random-weight demo model is generated on every start, so it carries
// a target (it was once a test's wall-clock limit, which a loaded machine could break; here it is
// a figure to watch instead).
//
//   npx tsc -p tsconfig.json && node dist/bench/model/load.js [--reps 5]
//
// Prints a table and writes bench/results/model-load.json.
import { loadBuiltinModel } from "../../src/model/builtin-model.js";
import { loadModel } from "../../src/model/load.js";
import { loadRandomDemoModel } from "../../src/model/random-demo-model.js";
import type { LoadedModel } from "../../src/model/types.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { writeResults } from "../common/results.js";

const { values } = benchArgs({ options: { reps: { type: "string", default: "5" } } });
const reps = intFlag(values.reps, "reps");

interface Case {
  readonly what: string;
  readonly load: () => Promise<LoadedModel>;
  /** A time it should stay well under, where there is one (ms). */
  readonly targetMs?: number;
}

const cases: Case[] = [
  { what: "random-weight demo (generated)", load: loadRandomDemoModel, targetMs: 2000 },
  { what: "built-in stories260K (.bin)", load: loadBuiltinModel },
  {
    what: "stories260K, Hugging Face dir",
    load: () => loadModel(sharedDataPath("models", "stories260K", "hf")),
  },
  {
    what: "stories260K, llama2.c .bin",
    load: () => loadModel(sharedDataPath("models", "stories260K", "stories260K.bin")),
  },
];

interface Row {
  what: string;
  params: number;
  bestMs: number;
  medianMs: number;
  targetMs: number | null;
  withinTarget: boolean | null;
}

const rows: Row[] = [];
for (const c of cases) {
  const times: number[] = [];
  let params = 0;
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    const model = await c.load();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    params = 0;
    for (const t of model.weights.values()) params += t.data.length;
  }
  times.sort((a, b) => a - b);
  const medianMs = times[Math.floor(times.length / 2)]!;
  rows.push({
    what: c.what,
    params,
    bestMs: times[0]!,
    medianMs,
    targetMs: c.targetMs ?? null,
    withinTarget: c.targetMs === undefined ? null : medianMs < c.targetMs,
  });
}

console.log(`model start-up, ${reps} loads each`);
console.log("what                             |     params |  best ms | median ms | target");
for (const r of rows)
  console.log(
    `${r.what.padEnd(32)} | ${String(r.params).padStart(10)} | ${r.bestMs.toFixed(1).padStart(8)} | ${r.medianMs
      .toFixed(1)
      .padStart(9)} | ${r.targetMs === null ? "" : `< ${r.targetMs} ms: ${r.withinTarget ? "yes" : "NO"}`}`,
  );

writeResults("model-load.json", { reps, results: rows });
