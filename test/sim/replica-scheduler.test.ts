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
const LIMITS = { maxRunning: 6, maxTokensPerStep: 128, maxWaiting: 100 };
const BLOCKS = 40;

type Trace = string[];

/** The runtime's scheduler, driven the way EngineCore lands a step (tokens appended, finished removed). */
function runRuntime(): { trace: Trace; preemptions: number } {
  const alloc = new BlockAllocator(BLOCKS, 16);
  const attention = {
    blockSize: 16,
    reserve: (id: number, n: number) => alloc.reserve(id, n),
    release: (id: number) => alloc.release(id),
  } as unknown as AttentionService;
  const s = new Scheduler(LIMITS, attention);
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
function runReplica(): { trace: Trace; preemptions: number; seqs: ReplicaSeq[] } {
  const s = new ReplicaScheduler(LIMITS.maxRunning, new SinglePool(new BlockPool(BLOCKS, 16)));
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
  it("schedules, admits and preempts exactly as the runtime's scheduler, step for step", () => {
    const a = runRuntime();
    const b = runReplica();
    assert.ok(a.preemptions > 0, "the workload must be KV-short enough to preempt");
    assert.equal(b.preemptions, a.preemptions);
    assert.deepEqual(b.trace, a.trace);
  });

  it("preempts by recompute when KV runs short: the victim's whole context is prefilled again", () => {
    const { seqs, preemptions } = runReplica();
    assert.ok(preemptions > 0);
    const victim = seqs.find((q) => q.preemptions > 0)!;
    assert.equal(victim.status, "done");
    assert.equal(victim.generated, victim.maxTokens, "a preempted request still produces all its tokens");
  });
});
