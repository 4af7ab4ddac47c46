// The largest batch under one memory budget, int8 KV against f16 KV: runs long-context.js once per
// KV dtype with the same flags (the same model, budget and workload) and compares, per placement,
// the KV capacity the engine reported and the largest batch that decoded together. The limit
// beside each ratio is the analytic one, f16's bytes per token over int8's (rows and scales).
//
//   node dist/bench/disagg/long-context-kv-dtype.js [any long-context.js flag but --kv-dtype/--out]
//
// Writes bench/results/disagg-long-context-kv-dtype.json (and one long-context JSON per dtype).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { RESULTS_DIR, writeResults } from "../common/results.js";

const passed = process.argv.slice(2);
if (passed.some((a) => a === "--kv-dtype" || a === "--out"))
  throw new Error("long-context-kv-dtype sets --kv-dtype and --out itself");

interface PlacementResult {
  placement: string;
  kvCapacityTokens: number;
  kvCapacitySequences: number;
  analyticCapacity: number;
  maxBatch: number;
  decodeTokensPerSecond: number;
  completed: number;
  errors: number;
}
interface Run {
  kvBytesPerToken: number;
  requests: number;
  results: PlacementResult[];
  shape: { headDim: number };
}

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), "long-context.js");
const runs: Record<string, Run> = {};
for (const kvDtype of ["f16", "int8"]) {
  const out = `disagg-long-context-${kvDtype}.json`;
  console.log(`--- --kv-dtype ${kvDtype}`);
  const r = spawnSync(process.execPath, [script, ...passed, "--kv-dtype", kvDtype, "--out", out], {
    stdio: "inherit",
  });
  if (r.status !== 0) throw new Error(`long-context.js --kv-dtype ${kvDtype} exited with ${r.status}`);
  runs[kvDtype] = JSON.parse(readFileSync(path.join(RESULTS_DIR, out), "utf8")) as Run;
}

const f16 = runs.f16!;
const i8 = runs.int8!;
const limit = f16.kvBytesPerToken / i8.kvBytesPerToken;
console.log(
  `\nKV bytes per token: f16 ${f16.kvBytesPerToken}, int8 ${i8.kvBytesPerToken} (head_dim ${f16.shape.headDim}): ` +
    `the analytic limit of the ratio is ${limit.toFixed(3)}×`,
);
console.log(
  "\n| placement | KV capacity tokens f16 → int8 | × | max batch f16 → int8 (requests) | × | target | decode tok/s f16 → int8 |",
);
console.log("| --- | --- | ---: | --- | ---: | --- | --- |");
const rows = f16.results.map((a, i) => {
  const b = i8.results[i]!;
  const row = {
    placement: a.placement,
    kvCapacityTokens: { f16: a.kvCapacityTokens, int8: b.kvCapacityTokens },
    capacityRatio: b.kvCapacityTokens / a.kvCapacityTokens,
    maxBatch: { f16: a.maxBatch, int8: b.maxBatch },
    maxBatchRatio: b.maxBatch / Math.max(1, a.maxBatch),
    analyticSequences: { f16: a.analyticCapacity, int8: b.analyticCapacity },
    decodeTokensPerSecond: { f16: a.decodeTokensPerSecond, int8: b.decodeTokensPerSecond },
    completed: { f16: a.completed, int8: b.completed },
    errors: a.errors + b.errors,
  };
  console.log(
    `| ${row.placement} | ${a.kvCapacityTokens} → ${b.kvCapacityTokens} | ${row.capacityRatio.toFixed(2)} | ` +
      `${a.maxBatch} → ${b.maxBatch} (${f16.requests}, ${i8.requests}) | ${row.maxBatchRatio.toFixed(2)} | ≥ 1.9× | ` +
      `${a.decodeTokensPerSecond.toFixed(1)} → ${b.decodeTokensPerSecond.toFixed(1)} |`,
  );
  return row;
});
writeResults("disagg-long-context-kv-dtype.json", { flags: passed, limit, f16, int8: i8, rows });
