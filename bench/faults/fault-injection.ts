/**
 * Seeded fault injection, the long run: for each placement (2 attention workers, request and head
 * partition, over shared memory and TCP; PD with 1 prefill instance), runs of concurrent greedy
 * streams through the real HTTP server while the workers (prefill instances) are killed, stopped
 * and delayed at seeded moments; each run's invariants are checked (see
 * test/helpers/fault-harness.ts). Run r of every placement uses seed S + r, on a server of its
 * own, so a failing run is reproduced with --placement P --seed S+r --runs 1 (and the same shape).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/faults/fault-injection.js [--runs N] [--seed S]
 *     [--minutes M] [--placement NAME] [--streams 6] [--faults 3] [--kinds kill,stop,delay]
 *     [--rounds 1] [--out fault-injection.json] [--hang-ms 35000] [--window 0.8]
 *
 * --runs: runs per placement (default 4); --minutes: instead, go round the placements until M
 * minutes have passed (with --runs too, whichever ends first); --hang-ms: how long a stream may
 * take before it counts as hung (past the engine's 30 s recovery bound); --window: faults fire
 * within this fraction of the streams' tokens; --rounds R: R runs (seeds) per server, the server
 * stopped after the last. Prints a table and each failing run's schedule, writes
 * bench/results/<--out>, and exits 1 if any invariant failed.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import path from "node:path";
import {
  DEFAULT_BOUNDS,
  DEFAULT_WINDOW,
  describeRun,
  FAULT_KINDS,
  type FaultKind,
  type Outcome,
  PLACEMENTS,
  placementNamed,
  planRun,
  type RunReport,
  runFaultSession,
  undisturbedBaseline,
} from "../../test/helpers/fault-harness.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { RESULTS_DIR, writeResults } from "../common/results.js";

const { values } = benchArgs({
  options: {
    runs: { type: "string" },
    seed: { type: "string", default: "1" },
    minutes: { type: "string" },
    placement: { type: "string" },
    streams: { type: "string", default: "6" },
    faults: { type: "string", default: "3" },
    kinds: { type: "string", default: FAULT_KINDS.join(",") },
    rounds: { type: "string", default: "1" },
    out: { type: "string", default: "fault-injection.json" },
    "hang-ms": { type: "string", default: String(DEFAULT_BOUNDS.hangMs) },
    window: { type: "string", default: String(DEFAULT_WINDOW) },
  },
});
const minutes = values.minutes === undefined ? null : Number(values.minutes);
if (minutes !== null && !(minutes > 0)) throw new Error("--minutes needs a positive number");
const runsPerPlacement =
  values.runs !== undefined ? intFlag(values.runs, "runs") : minutes !== null ? Infinity : 4;
const firstSeed = intFlag(values.seed, "seed", 0);
const streams = intFlag(values.streams, "streams");
const faults = intFlag(values.faults, "faults", 0);
const rounds = intFlag(values.rounds, "rounds");
const bounds = { ...DEFAULT_BOUNDS, hangMs: intFlag(values["hang-ms"], "hang-ms") };
const window = Number(values.window);
if (!(window > 0 && window <= 1)) throw new Error("--window needs a number in (0, 1]");
const placements = values.placement ? [placementNamed(values.placement)] : PLACEMENTS;
const kinds = values.kinds.split(",").map((k) => {
  if (!(FAULT_KINDS as readonly string[]).includes(k))
    throw new Error(`--kinds: ${k} is not one of ${FAULT_KINDS.join(", ")}`);
  return k as FaultKind;
});

interface Row {
  placement: string;
  runs: number;
  faults: Record<string, number>;
  faultsWithoutTarget: number;
  requests: number;
  identical: number;
  clearError: number;
  hung: number;
  wrongText: number;
  unclearError: number;
  leakedKvBlocks: number;
  healthOkAfter: number;
  sessions: number;
  stoppedCleanly: number;
  failedRuns: number;
  seconds: number;
}

function emptyRow(placement: string): Row {
  return {
    placement,
    runs: 0,
    faults: Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])),
    faultsWithoutTarget: 0,
    requests: 0,
    identical: 0,
    clearError: 0,
    hung: 0,
    wrongText: 0,
    unclearError: 0,
    leakedKvBlocks: 0,
    healthOkAfter: 0,
    sessions: 0,
    stoppedCleanly: 0,
    failedRuns: 0,
    seconds: 0,
  };
}

const COUNTERS: Record<Outcome, keyof Row> = {
  identical: "identical",
  "clear error": "clearError",
  hung: "hung",
  "wrong text": "wrongText",
  "unclear error": "unclearError",
};

/** One run into its placement's row (the server's stop counts in the round that ended its session). */
function add(row: Row, r: RunReport): void {
  row.runs++;
  for (const f of r.faults) {
    if (f.pid !== null) row.faults[f.spec.kind]!++;
    else row.faultsWithoutTarget++;
  }
  row.requests += r.outcomes.length;
  for (const o of r.outcomes) (row[COUNTERS[o]] as number)++;
  row.leakedKvBlocks += r.kvLeaked;
  if (r.healthOk) row.healthOkAfter++;
  if (r.closedServer) {
    row.sessions++;
    if (r.closeMs >= 0 && r.leftProcesses.length === 0) row.stoppedCleanly++;
  }
  if (r.violations.length > 0) row.failedRuns++;
  row.seconds += r.ms / 1000;
}

function table(rows: Row[]): string {
  const head = [
    "placement",
    "runs",
    "kill / stop / delay",
    "requests",
    "identical",
    "clear error",
    "hung",
    "wrong / unclear",
    "leaked KV blocks",
    "health ok after",
    "stopped cleanly",
  ];
  const lines = [`| ${head.join(" | ")} |`, `| --- |${" ---: |".repeat(head.length - 1)}`];
  for (const r of rows) {
    lines.push(
      `| ${[
        r.placement,
        r.runs,
        FAULT_KINDS.map((k) => r.faults[k]).join(" / "),
        r.requests,
        r.identical,
        r.clearError,
        r.hung,
        `${r.wrongText} / ${r.unclearError}`,
        r.leakedKvBlocks,
        `${r.healthOkAfter}/${r.runs}`,
        `${r.stoppedCleanly}/${r.sessions}`,
      ].join(" | ")} |`,
    );
  }
  return lines.join("\n");
}

function record(report: RunReport, failed: FailedRun[], runs: unknown[]): void {
  const { seed, placement } = report.plan;
  const ok = report.violations.length === 0;
  const p = report.phases;
  console.log(
    `${ok ? "ok  " : "FAIL"} ${placement.name} seed ${seed}: ${report.outcomes.join(", ")} ` +
      `(${report.faults.map((f) => `${f.spec.kind}${f.pid === null ? "(none)" : ""}`).join(", ")}) ${report.ms} ms ` +
      `(start ${p.start}, streams ${p.streams}, checks ${p.checks}, close ${p.close})`,
  );
  if (!ok) {
    const description = describeRun(report);
    console.log(description.replace(/^/gm, "    "));
    failed.push({ seed, placement: placement.name, description });
  }
  runs.push({
    seed,
    placement: placement.name,
    round: report.round,
    ms: report.ms,
    phases: report.phases,
    faults: report.faults.map((f) => ({
      ...f.spec,
      atTokens: f.atTokens,
      atMs: f.atMs,
      pid: f.pid,
      note: f.note,
    })),
    outcomes: report.outcomes,
    errors: report.streams.map((s) => s.error),
    kvLeaked: report.kvLeaked,
    health: report.health,
    healthOk: report.healthOk,
    closeMs: report.closeMs,
    violations: report.violations,
    ...(ok ? {} : { log: report.log }),
  });
}

type FailedRun = { seed: number; placement: string; description: string };

const minutesSince = (started: number) => (Date.now() - started) / 60_000;

function results(started: number, rows: Row[], failed: FailedRun[], runs: unknown[], complete: boolean) {
  return {
    date: new Date().toISOString(),
    complete,
    cpu: cpus()[0]?.model ?? null,
    cores: cpus().length,
    streams,
    faultsPerRun: faults,
    kinds,
    window,
    rounds,
    firstSeed,
    bounds,
    minutes: minutesSince(started),
    rows,
    failed,
    runs,
  };
}

async function main(): Promise<void> {
  const started = Date.now();
  const deadline = minutes === null ? Infinity : started + minutes * 60_000;
  console.log(
    `fault injection: ${placements.map((p) => p.name).join(", ")}; ${streams} streams, ${faults} faults (${kinds.join(", ")}) per run; ` +
      `seeds from ${firstSeed}; ${Number.isFinite(runsPerPlacement) ? `${runsPerPlacement} runs per placement` : ""}` +
      `${minutes !== null ? ` for up to ${minutes} min` : ""}; CPU ${cpus()[0]?.model ?? "?"} ×${cpus().length}`,
  );
  const baseline = await undisturbedBaseline();
  const rows = new Map(placements.map((p) => [p.name, emptyRow(p.name)]));
  const failed: FailedRun[] = [];
  mkdirSync(RESULTS_DIR, { recursive: true });
  const runs: unknown[] = [];
  for (let k = 0; k < runsPerPlacement && Date.now() < deadline; k += rounds) {
    for (const placement of placements) {
      if (Date.now() >= deadline) break;
      const count = Math.min(rounds, runsPerPlacement - k);
      const plans = Array.from({ length: count }, (_, i) =>
        planRun(firstSeed + k + i, placement, { streams, faults, kinds, window }),
      );
      const reports = await runFaultSession(plans, baseline, bounds);
      for (const report of reports) {
        add(rows.get(placement.name)!, report);
        record(report, failed, runs);
      }
      // Saved as it goes: a crash of this process (a finding too) keeps what ran before it.
      const partial = results(started, [...rows.values()], failed, runs, false);
      writeFileSync(path.join(RESULTS_DIR, values.out), `${JSON.stringify(partial, null, 2)}\n`);
    }
  }
  const all = [...rows.values()];
  console.log(`\n${table(all)}\n`);
  console.log(`${minutesSince(started).toFixed(1)} min; ${failed.length} run(s) with a failed invariant`);
  writeResults(values.out, results(started, all, failed, runs, true));
  // A run whose engine did not stop may still hold its thread: do not wait for it.
  process.exit(failed.length > 0 ? 1 : 0);
}

await main();
