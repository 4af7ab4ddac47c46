import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BlockAllocator } from "../../src/attention/block-allocator.js";
import type { AttentionService } from "../../src/attention/service.js";
import { blockKeys } from "../../src/engine/prefix-keys.js";
import { resolveSamplingParams } from "../../src/engine/sampling-params.js";
import { Scheduler } from "../../src/engine/scheduler.js";
import { Sequence } from "../../src/engine/sequence.js";
import { CachingBlockPool } from "../../src/sim/replica/caching-pool.js";
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

/**
 * Requests through the runtime's scheduler, driven the way EngineCore lands a step (KV computed,
 * filled blocks published, tokens appended, finished sequences removed).
 */
function driveRuntime(
  s: Scheduler,
  reqs: readonly { at: number; tokens: readonly number[]; output: number }[],
): { trace: Trace; seqs: Sequence[] } {
  const seqs: Sequence[] = [];
  const trace: Trace = [];
  let next = 0;
  for (let step = 0; (next < reqs.length || s.hasWork) && step < 10_000; step++) {
    while (next < reqs.length && reqs[next]!.at <= step) {
      const r = reqs[next]!;
      const params = resolveSamplingParams({ temperature: 0, maxTokens: r.output, ignoreEos: true });
      const seq = new Sequence(next, `r${next}`, [...r.tokens], params);
      seqs.push(seq);
      s.add(seq);
      next++;
    }
    const chunks = s.schedule();
    trace.push(chunks.map((c) => `${c.seq.id}:${c.start}+${c.count}${c.sample ? "s" : ""}`).join(" "));
    for (const c of [...chunks]) {
      const seq = c.seq;
      seq.numComputed = c.start + c.count;
      s.publish(c);
      if (!c.sample) continue;
      seq.appendToken(7);
      if (seq.output.length >= seq.params.maxTokens) {
        seq.status = "finished";
        s.remove(seq);
      }
    }
  }
  return { trace, seqs };
}

/** The runtime's scheduler on REQS (no prefix cache). */
function runRuntime(reserve: OutputReserveOptions): { trace: Trace; preemptions: number } {
  const alloc = new BlockAllocator(BLOCKS, 16);
  const attention = {
    blockSize: 16,
    reserve: (id: number, n: number, ahead = 0) => alloc.reserve(id, n + ahead),
    release: (id: number) => alloc.release(id),
  } as unknown as AttentionService;
  const s = new Scheduler({ ...LIMITS, outputReserve: reserve }, attention);
  const reqs = REQS.map((r) => ({
    at: r.at,
    tokens: Array.from({ length: r.prompt }, () => 1),
    output: r.output,
  }));
  return { trace: driveRuntime(s, reqs).trace, preemptions: s.preemptions };
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

// Prefix caching: 12 prompts made of one of three shared openings (40, 72 and 100 tokens; two
// requests in a row share one, so some arrive while another computes their opening) and a tail of
// their own, into a KV short enough to evict cached blocks and preempt.
const PREFIX_REQS = Array.from({ length: 12 }, (_, i) => {
  const o = Math.floor(i / 2) % 3;
  const tokens = [
    ...Array.from({ length: [40, 72, 100][o]! }, (_, j) => 1000 * o + j),
    ...Array.from({ length: 10 + ((i * 37) % 60) }, (_, j) => 5000 + 100 * i + j),
  ];
  return { at: Math.floor(i / 3), tokens, output: 30 + ((i * 53) % 60) };
});

interface PrefixReq {
  readonly at: number;
  readonly tokens: readonly number[];
  readonly output: number;
}

/** The runtime's scheduler with its prefix cache on a BlockAllocator, landing as EngineCore does. */
function runRuntimePrefix(
  reqs: readonly PrefixReq[],
  blocks: number,
): { trace: Trace; preemptions: number; cached: number[]; keys: string[][] } {
  const alloc = new BlockAllocator(blocks, 16);
  const attention = {
    blockSize: 16,
    reserve: (id: number, n: number, ahead = 0) => alloc.reserve(id, n + ahead),
    release: (id: number) => alloc.release(id),
    prefix: {
      attach: (id: number, keys: readonly string[]) => {
        const run = alloc.lookupRun(keys);
        alloc.attach(id, run);
        return run.length;
      },
      publish: (id: number, index: number, key: string) => void alloc.retain(id, index, key),
      cachedBlocks: () => alloc.cachedBlocks,
    },
  } as unknown as AttentionService;
  const s = new Scheduler({ ...LIMITS, outputReserve: NO_OUTPUT_RESERVE }, attention);
  const { trace, seqs } = driveRuntime(s, reqs);
  // The prompts' blocks only (the runtime extended each list with its output's blocks as it published them).
  const keys = seqs.map((q) => {
    const full = Math.floor(q.promptTokens.length / 16);
    return blockKeys(q, 16, full).slice(0, full);
  });
  return { trace, preemptions: s.preemptions, cached: seqs.map((q) => q.cachedTokens), keys };
}

/** The replica on the same requests, the runtime's prompt block hashes numbered as its keys. */
function runReplicaPrefix(reqs: readonly PrefixReq[], blocks: number, keys: readonly string[][]) {
  const ids = new Map<string, number>();
  const keyIds = keys.map((ks) =>
    ks.map((k) => {
      if (!ids.has(k)) ids.set(k, ids.size);
      return ids.get(k)!;
    }),
  );
  const pool = new CachingBlockPool(blocks, 16);
  const s = new ReplicaScheduler(
    LIMITS.maxRunning,
    new SinglePool(pool),
    LIMITS.maxContext,
    NO_OUTPUT_RESERVE,
  );
  const seqs = reqs.map((r, i) => new ReplicaSeq(i, r.at, r.tokens.length, r.output, keyIds[i]));
  const trace: Trace = [];
  let next = 0;
  for (let step = 0; (next < seqs.length || s.hasWork) && step < 10_000; step++) {
    while (next < seqs.length && seqs[next]!.arrival <= step) s.waiting.push(seqs[next++]!);
    const chunks = s.schedule(LIMITS.maxTokensPerStep);
    trace.push(chunks.map((c) => `${c.seq.id}:${c.start}+${c.count}${c.sample ? "s" : ""}`).join(" "));
    s.land(chunks, step);
  }
  return { trace, preemptions: s.preemptions, cached: seqs.map((q) => q.cachedTokens), pool };
}

describe("replica scheduler: prefix caching", () => {
  it("attaches, waits for a shared prefix, publishes, evicts and preempts exactly as the runtime, step for step", () => {
    const a = runRuntimePrefix(PREFIX_REQS, BLOCKS);
    assert.ok(a.preemptions > 0, "the workload must be KV-short enough to preempt");
    assert.ok(a.cached.filter((c) => c > 0).length >= 6, `prompts found their openings cached: ${a.cached}`);
    const b = runReplicaPrefix(PREFIX_REQS, BLOCKS, a.keys);
    assert.equal(b.preemptions, a.preemptions);
    assert.deepEqual(b.trace, a.trace);
    assert.deepEqual(b.cached, a.cached);
    assert.ok(b.pool.evictions > 0, "cached blocks were evicted");
    assert.equal(b.pool.usedBlocks, 0);
  });

  it("a preempted sequence finds its own output's blocks cached again, as in the runtime", () => {
    // 10 blocks: two 20-token prompts decoding together fill them at 80 tokens each; the newer is
    // preempted, the older takes some of its blocks, and the newer comes back to what is left.
    const reqs = [0, 1].map((i) => ({
      at: 0,
      tokens: Array.from({ length: 20 }, (_, j) => 100 * i + j),
      output: 100,
    }));
    const a = runRuntimePrefix(reqs, 10);
    assert.equal(a.preemptions, 1);
    const b = runReplicaPrefix(reqs, 10, a.keys);
    assert.deepEqual(b.trace, a.trace);
    // Its recompute starts after 2 cached blocks: the prompt's and one holding prompt and output.
    const resumed = a.trace.flatMap((t) => t.split(" ")).filter((c) => /^1:[1-9]\d*\+([2-9]|\d\d)/.test(c));
    assert.deepEqual(resumed, ["1:32+49s"]);
  });
});
