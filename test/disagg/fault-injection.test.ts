// Seeded fault injection through the real server (see test/helpers/fault-harness.ts): concurrent
// greedy streams while attention workers (prefill instances) are killed, stopped or delayed at
// seeded moments; after each run, every request has its undisturbed text or a clear error, none
// hangs, KV is back to zero, /health is truthful and the server stops cleanly. A failure names
// the seed, the placement and the fault schedule; the long run is bench/faults/fault-injection.ts.
//
// What this file covers is what passes today:
//   - kills and delays (SIGSTOP, then SIGCONT after 100–1000 ms), two per run, on every placement;
//   - one SIGSTOP left in place per run, on the attention-worker placements.
// Not covered, because of bugs in src/ the long run finds (reported; not worked around here):
//   - a SIGSTOPped prefill instance (pd): nothing declares it lost (the PREFILL RPC has no
//     timeout), so the next prefill, and the engine's shutdown, wait for ever;
//   - a SIGSTOP overlapping a recovery (two stops close together, or a stop and a kill): the
//     recovery's CONFIGURE to a stopped worker (a survivor re-laid out under head partitioning, or
//     a replacement stopped during its start-up) waits the RPC layer's 60 s instead of the
//     liveness bound, and a TCP replacement stopped before it listens is waited for without bound.
// Time is short (2 cores): each placement's runs are rounds on one server (the invariants of a run
// are checked after each round, the clean stop after the last), and a failure names the round too.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import {
  type Baseline,
  type Bounds,
  describeRun,
  type FaultKind,
  PLACEMENTS,
  type PlanShape,
  planRun,
  runFaultSession,
  undisturbedBaseline,
} from "../helpers/fault-harness.js";

/** Tighter than the long run's: a failing run must end well within the test's timeout. */
const BOUNDS: Bounds = { hangMs: 20_000, kvMs: 5_000, healthMs: 10_000, closeMs: 10_000 };
const STREAMS = 6;
const KILL_DELAY: readonly FaultKind[] = ["kill", "delay"];

/** Per placement: its rounds, each a seed and a shape. */
function roundsFor(target: string): { seed: number; shape: PlanShape }[] {
  return [
    { seed: 101, shape: { streams: STREAMS, faults: 2, kinds: KILL_DELAY } },
    target === "attention-worker"
      ? { seed: 202, shape: { streams: STREAMS, faults: 1, kinds: ["stop"] } }
      : { seed: 303, shape: { streams: STREAMS, faults: 2, kinds: KILL_DELAY } },
  ];
}

describe("seeded fault injection under concurrent streams", { timeout: 110_000 }, () => {
  let baseline: Baseline;
  before(async () => {
    baseline = await undisturbedBaseline(BOUNDS.hangMs);
  });

  for (const placement of PLACEMENTS) {
    const rounds = roundsFor(placement.target);
    const title = rounds.map((r) => `seed ${r.seed}: ${r.shape.faults} × ${r.shape.kinds!.join("/")}`);
    it(`${placement.name} (${title.join("; ")})`, { timeout: 75_000 }, async () => {
      const plans = rounds.map((r) => planRun(r.seed, placement, r.shape));
      const reports = await runFaultSession(plans, baseline, BOUNDS);
      for (const r of reports) assert.deepEqual(r.violations, [], `\n${describeRun(r)}`);
      assert.equal(reports.length, plans.length, "every round ran");
      for (const r of reports)
        assert.ok(
          r.faults.some((f) => f.pid !== null),
          `no fault hit a process:\n${describeRun(r)}`,
        );
    });
  }
});
