import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BlockAllocator } from "../../src/attention/block-allocator.js";
import type { AttentionService } from "../../src/attention/service.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { Scheduler } from "../../src/engine/scheduler.js";
import { Sequence } from "../../src/engine/sequence.js";
import { BlockPool } from "../../src/sim/replica/kv-blocks.js";
import { SinglePool } from "../../src/sim/replica/kv-space.js";
import { ReplicaScheduler, ReplicaSeq } from "../../src/sim/replica/scheduler.js";
import {
  DEFAULT_OUTPUT_RESERVE,
  describeOutputReserve,
  NO_OUTPUT_RESERVE,
  OutputReserve,
  type OutputReserveOptions,
} from "../../src/util/output-reserve.js";

interface Req {
  readonly at: number;
  readonly prompt: number;
  readonly output: number;
}

// A KV-short workload: 12 requests arriving over the first steps into 40 blocks of 16 tokens,
// several prompts longer than the budget (chunked), outputs long enough to force preemptions.
const REQS: Req[] = Array.from({ length: 12 }, (_, i) => ({
  at: Math.floor(i / 2),
  prompt: 20 + ((i * 97) % 150),
  output: 30 + ((i * 53) % 90),
}));
const LIMITS = { maxRunning: 6, maxTokensPerStep: 128, maxWaiting: 100, maxContext: 400 };
// Reserves that preempt often (none), rarely (the default), and one that swings between the two
// (the ratio falls to 0 in five calm micro-batches and returns to 1 at each preemption).
const RESERVES: [string, OutputReserveOptions][] = [
  ["no reserve", NO_OUTPUT_RESERVE],
  ["the default reserve", DEFAULT_OUTPUT_RESERVE],
  ["a quickly adapting reserve", { initial: 1, min: 0, decay: 0.2 }],
];
const BLOCKS = 40;

type Trace = string[];

/** The runtime's scheduler, driven the way EngineCore lands a step (tokens appended, finished removed). */
function runRuntime(reserve: OutputReserveOptions): { trace: Trace; preemptions: number } {
  const alloc = new BlockAllocator(BLOCKS, 16);
  const attention = {
    blockSize: 16,
    reserve: (id: number, n: number, ahead = 0) => alloc.reserve(id, n + ahead),
    release: (id: number) => alloc.release(id),
  } as unknown as AttentionService;
  const s = new Scheduler({ ...LIMITS, outputReserve: reserve }, attention);
  const trace: Trace = [];
  let next = 0;
  for (let step = 0; (next < REQS.length || s.hasWork) && step < 10_000; step++) {
    while (next < REQS.length && REQS[next]!.at <= step) {
      const r = REQS[next]!;
      const params = resolveSamplingParams({ temperature: 0, maxTokens: r.output, ignoreEos: true });
      s.add(
        new Sequence(
          next,
          `r${next}`,
          Array.from({ length: r.prompt }, () => 1),
          params,
        ),
      );
      next++;
    }
    const chunks = s.schedule();
    trace.push(chunks.map((c) => `${c.seq.id}:${c.start}+${c.count}${c.sample ? "s" : ""}`).join(" "));
    for (const c of [...chunks]) {
      const seq = c.seq;
      seq.numComputed = c.start + c.count;
      if (!c.sample) continue;
      seq.appendToken(1);
      if (seq.output.length >= seq.params.maxTokens) {
        seq.status = "finished";
        s.remove(seq);
      }
    }
  }
  return { trace, preemptions: s.preemptions };
}

/** The simulator's replica on the same requests. */
function runReplica(reserve: OutputReserveOptions): {
  trace: Trace;
  preemptions: number;
  seqs: ReplicaSeq[];
} {
  const pool = new SinglePool(new BlockPool(BLOCKS, 16));
  const s = new ReplicaScheduler(LIMITS.maxRunning, pool, LIMITS.maxContext, reserve);
  const seqs = REQS.map((r, i) => new ReplicaSeq(i, r.at, r.prompt, r.output));
  const trace: Trace = [];
  let next = 0;
  for (let step = 0; (next < REQS.length || s.hasWork) && step < 10_000; step++) {
    while (next < REQS.length && REQS[next]!.at <= step) s.waiting.push(seqs[next++]!);
    const chunks = s.schedule(LIMITS.maxTokensPerStep);
    trace.push(chunks.map((c) => `${c.seq.id}:${c.start}+${c.count}${c.sample ? "s" : ""}`).join(" "));
    s.land(chunks, step);
  }
  return { trace, preemptions: s.preemptions, seqs };
}

describe("replica scheduler", () => {
  for (const [name, reserve] of RESERVES)
    it(`schedules, admits and preempts exactly as the runtime's scheduler, step for step (${name})`, () => {
      const a = runRuntime(reserve);
      const b = runReplica(reserve);
      if (reserve !== DEFAULT_OUTPUT_RESERVE)
        assert.ok(a.preemptions > 0, "the workload must be KV-short enough to preempt");
      assert.equal(b.preemptions, a.preemptions);
      assert.deepEqual(b.trace, a.trace);
    });

  it("the output reserve preempts less on the same KV-short workload", () => {
    const none = runReplica(NO_OUTPUT_RESERVE).preemptions;
    const adaptive = runReplica(DEFAULT_OUTPUT_RESERVE).preemptions;
    assert.ok(adaptive < none / 2, `default reserve ${adaptive} preemptions against ${none} without`);
  });

  it("a request whose reserve does not fit the cache is admitted alone with what its step needs", () => {
    // 10 blocks of 16 = 160 tokens: a 20-token prompt fits, its 20 + 500 reserved tokens do not.
    const alloc = new BlockAllocator(10, 16);
    const attention = {
      reserve: (id: number, n: number, ahead = 0) => alloc.reserve(id, n + ahead),
      release: (id: number) => alloc.release(id),
    } as unknown as AttentionService;
    const runtime = new Scheduler({ ...LIMITS, maxContext: 10_000 }, attention);
    const params = resolveSamplingParams({ temperature: 0, maxTokens: 500, ignoreEos: true });
    runtime.add(
      new Sequence(
        1,
        "big",
        Array.from({ length: 20 }, () => 1),
        params,
      ),
    );
    assert.deepEqual(
      runtime.schedule().map((c) => [c.seq.id, c.start, c.count]),
      [[1, 0, 20]],
    );
    assert.equal(alloc.usedBlocks, 2);
    const replica = new ReplicaScheduler(6, new SinglePool(new BlockPool(10, 16)), 10_000);
    replica.waiting.push(new ReplicaSeq(1, 0, 20, 500));
    assert.deepEqual(
      replica.schedule(128).map((c) => [c.seq.id, c.start, c.count]),
      [[1, 0, 20]],
    );
  });

  it("the reserve's ratio falls while calm, returns at a preemption, and bounds what admission asks", () => {
    const r = new OutputReserve({ initial: 1, min: 0.25, decay: 0.25 });
    assert.equal(r.admit(100, 0, 100, 40), 140);
    r.planned(false);
    r.planned(false);
    assert.equal(r.ratio, 0.5);
    assert.equal(r.admit(100, 0, 100, 40), 120);
    r.planned(false);
    r.planned(false);
    assert.equal(r.ratio, 0.25, "not below min");
    assert.equal(r.admit(10, 0, 64, 0), 64, "never less than the step's own tokens");
    r.planned(true);
    assert.equal(r.ratio, 1);
    assert.throws(() => new OutputReserve({ initial: 0.5, min: 0.6, decay: 0 }), /min <= initial/);
    assert.throws(() => new OutputReserve({ initial: 2, min: 0, decay: 0 }), /initial 2/);
    assert.equal(describeOutputReserve(NO_OUTPUT_RESERVE), "none");
    assert.equal(
      describeOutputReserve({ initial: 0.5, min: 0.5, decay: 0.1 }),
      "0.5 of the remaining output",
    );
  });

  it("preempts by recompute when KV runs short: the victim's whole context is prefilled again", () => {
    const { seqs, preemptions } = runReplica(NO_OUTPUT_RESERVE);
    assert.ok(preemptions > 0);
    const victim = seqs.find((q) => q.preemptions > 0)!;
    assert.equal(victim.status, "done");
    assert.equal(victim.generated, victim.maxTokens, "a preempted request still produces all its tokens");
  });
});
