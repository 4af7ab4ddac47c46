// The constrained draw's cost (JSON mode and structured outputs) beside the unconstrained draw of
// the same logits, the limit measured in the same run: a Qwen3-sized vocabulary (its real
// tokenizer, 151,669 tokens), random logits, greedy and temperature 1 / top-p 0.95, in three
// states of a reply: inside a string (most tokens allowed: the first draw is taken), after a key
// (a colon or whitespace only: refusals, then the pass over the whole vocabulary) and in a schema's
// enum value (a handful of tokens allowed).
//
//   node dist/bench/engine/structured-draw.js [--draws 200]
import {
  advanceJson,
  allowedTokens,
  JSON_OBJECT,
  type JsonState,
  jsonStart,
} from "../../src/engine/json-constraint.js";
import { compileSchema } from "../../src/engine/json-schema.js";
import { Rng } from "../../src/engine/rng.js";
import { Sampler, type SamplingState } from "../../src/engine/sampler.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { loadHfTokenizer } from "../../src/tokenizer/index.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { writeResults } from "../common/results.js";

const { values } = benchArgs({ options: { draws: { type: "string", default: "200" } } });
const draws = intFlag(values.draws, "draws");

const tok = loadHfTokenizer(sharedDataPath("tokenizers", "tokenizer-qwen3"));
const pieces = tok.pieces;
if (!pieces) throw new Error("the Qwen3 tokenizer has no byte pieces");
const V = tok.vocabSize;
const sampler = new Sampler(V);
const rng = new Rng(1);
const logits = new Float32Array(V);
const row = new Float32Array(V);
for (let i = 0; i < V; i++) logits[i] = 4 * (rng.next() + rng.next() + rng.next() - 1.5);
const ends = new Uint8Array(V);
for (const t of tok.eosTokenIds) ends[t] = 1;
const utf8 = new TextEncoder();
const at = (start: JsonState, text: string) => advanceJson(start, utf8.encode(text))!;

const schema = compileSchema({
  type: "object",
  properties: { color: { enum: ["red", "green", "blue"] } },
  required: ["color"],
});
const states: [string, JsonState | null][] = [
  ["unconstrained (the limit)", null],
  ["JSON mode, inside a string", at(jsonStart(JSON_OBJECT), '{"name": "An')],
  ["JSON mode, after a key", at(jsonStart(JSON_OBJECT), '{"name"')],
  ["schema, in an enum value", at(jsonStart(schema), '{"color": "')],
];

function state(temperature: number, seed: number): SamplingState {
  return {
    params: resolveSamplingParams({ temperature, topP: temperature > 0 ? 0.95 : 1, seed }),
    rng: new Rng(seed),
    promptTokens: [],
    outputCounts: new Map(),
  };
}

/** Median µs of one draw from `s` (null: unconstrained), the row refreshed before each. */
function timeDraws(s: JsonState | null, temperature: number): number {
  const st = state(temperature, 7);
  const t: number[] = [];
  for (let i = 0; i < draws; i++) {
    row.set(logits);
    const t0 = performance.now();
    const token = s
      ? sampler.sampleAllowed(row, 0, st, allowedTokens(s, pieces!, V, ends))
      : sampler.sample(row, 0, st);
    t.push((performance.now() - t0) * 1000);
    if (token < 0) throw new Error("no token allowed");
  }
  t.sort((a, b) => a - b);
  return t[draws >> 1]!;
}

console.log(`${cpuModel()}; Qwen3 vocabulary (${V} tokens), ${draws} draws a row, medians`);
console.log("| state | greedy µs | × limit | temperature 1, top-p 0.95 µs | × limit |");
console.log("| --- | ---: | ---: | ---: | ---: |");
const results = [];
let limit = [0, 0];
for (const [name, s] of states) {
  const greedy = timeDraws(s, 0);
  const sampled = timeDraws(s, 1);
  if (!s) limit = [greedy, sampled];
  const r = {
    state: name,
    greedyUs: greedy,
    sampledUs: sampled,
    greedyX: greedy / limit[0]!,
    sampledX: sampled / limit[1]!,
  };
  results.push(r);
  console.log(
    `| ${name} | ${greedy.toFixed(0)} | ${r.greedyX.toFixed(2)} | ${sampled.toFixed(0)} | ${r.sampledX.toFixed(2)} |`,
  );
}
writeResults("structured-draw.json", { cpu: cpuModel(), vocab: V, draws, results });
