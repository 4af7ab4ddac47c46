// How fast the simulator replays one hour of Azure-Conv (19,366 requests, LLaMA3-70B) for each
// placement kind, against its limit of 10 s per run: the fastest of --reps runs, as a table and
// as bench/results/sim-speed.json.
//
//   npx tsc -p tsconfig.json && node dist/bench/sim/speed.js [--reps 3]
import { findNetwork, loadCatalog, resolveModel } from "../../src/sim/catalog.js";
import type { Placement } from "../../src/sim/placement.js";
import { formatTable } from "../../src/sim/report.js";
import { simulate } from "../../src/sim/simulate.js";
import { loadTrace } from "../../src/sim/trace.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { writeResults } from "../common/results.js";

/** Wall-clock limit for simulating one hour of Azure-Conv. */
const LIMIT_MS = 10_000;

const { values } = benchArgs({ options: { reps: { type: "string", default: "3" } } });
const reps = intFlag(values.reps, "reps");

const catalog = loadCatalog();
const network = findNetwork(catalog, "rdma-400g-fhbn");
const model = resolveModel(catalog, "llama3-70b");
const trace = loadTrace("azure-conv");
const disaggregated = {
  prefillDevice: "H100",
  prefillTp: 2,
  prefillInstances: 2,
  decodeDevice: "H100",
  decodeTp: 4,
  decodeInstances: 1,
} as const;
const placements: Placement[] = [
  { kind: "homogeneous", device: "H100", tp: 4, replicas: 1 },
  { kind: "lamina", modelDevice: "H100", attentionDevice: "H20", a: 2, b: 4, microBatches: 0 },
  { kind: "pd", ...disaggregated },
  { kind: "adrenaline", ...disaggregated, offloadRatio: 0.5, prefillShare: 0.7 },
];

const runs = placements.map((placement) => {
  const wallMs: number[] = [];
  let completed = 0;
  let label = "";
  for (let i = 0; i < reps; i++) {
    const r = simulate(trace, { model, placement, network, catalog });
    wallMs.push(r.wallMs);
    completed = r.completed;
    label = r.label;
  }
  const best = Math.min(...wallMs);
  return { label, kind: placement.kind, requests: trace.arrival.length, completed, wallMs, bestMs: best };
});

console.log(`One hour of Azure-Conv, ${model.name}: fastest of ${reps} runs (limit ${LIMIT_MS / 1000} s)`);
console.log(
  formatTable(
    ["placement", "requests", "completed", "wall ms", "µs/request", "share of limit"],
    runs.map((r) => [
      r.label,
      String(r.requests),
      String(r.completed),
      r.bestMs.toFixed(0),
      ((r.bestMs * 1e3) / r.requests).toFixed(1),
      (r.bestMs / LIMIT_MS).toFixed(3),
    ]),
  ),
);

writeResults("sim-speed.json", {
  trace: trace.name,
  model: model.name,
  reps,
  limitMs: LIMIT_MS,
  runs: runs.map((r) => ({ ...r, shareOfLimit: r.bestMs / LIMIT_MS })),
});
