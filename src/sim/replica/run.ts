import type { OutputReserveOptions } from "../../util/output-reserve.js";
import type { KvSpace } from "./kv-space.js";
import type { PlacementCost } from "./placement-cost.js";
import { type ReplicaChunk, ReplicaScheduler, ReplicaSeq } from "./scheduler.js";
import type { BatchLoad } from "./step-cost.js";

/** One request of a replayed workload: arrival (s), prompt tokens, output tokens to generate. */
export interface ReplicaRequest {
  readonly arrival: number;
  readonly prompt: number;
  readonly output: number;
  /**
   * The prompt's KV is already there (all but its last token, which the first step computes and
   * samples from): a decode-phase measurement, as the calibration's colocated and attention-worker
   * runs time only pure-decode steps.
   */
  readonly prefilled?: boolean;
  /**
   * Keys of the prompt's full blocks (equal keys: equal tokens up to that block's end), for
   * prefix caching where the KV space offers it; absent: none of its blocks is shared.
   */
  readonly blockKeys?: readonly number[];
}

export interface ReplicaOptions {
  readonly maxRunning: number;
  readonly maxTokensPerStep: number;
  /** Prefill instances (PD/Adrenaline), 0 otherwise. */
  readonly prefillInstances: number;
  readonly kv: KvSpace;
  readonly cost: PlacementCost;
  /** Longest sequence served (bounds the output a request is admitted with room for). */
  readonly maxContext?: number;
  /** The runtime scheduler's output reserve; its default if absent. */
  readonly outputReserve?: OutputReserveOptions;
}

/** What a replayed run measured, defined as the runtime's benchmarks define it. */
export interface ReplicaResult {
  readonly outputTokens: number;
  readonly seconds: number;
  readonly throughputTokS: number;
  /** Mean over requests of first token − arrival (s). */
  readonly ttftMeanS: number;
  /** Mean over requests with ≥ 2 tokens of (last − first token) / (tokens − 1) (s). */
  readonly tpotMeanS: number;
  readonly preemptions: number;
  /** Mean over steps of the running sequences after the step. */
  readonly runningMean: number;
  readonly steps: number;
  /** Requests that could never be admitted (larger than the KV even alone). */
  readonly failed: number;
  /** Prompt tokens requests took from the prefix cache when first scheduled. */
  readonly cachedTokens: number;
}

/**
 * Replays requests through the replica of our engine: at each step the arrived requests join the
 * waiting queue, every micro-batch slot is scheduled as the runtime's MicroBatchPipeline does
 * (each takes ceil(budget / depth) tokens and its share of the sequences), the placement's cost
 * model says how long the cycle takes, and the chunks land (tokens sampled, finished requests
 * released). Time jumps to the next arrival when nothing runs.
 */
export function runReplica(requests: readonly ReplicaRequest[], o: ReplicaOptions): ReplicaResult {
  const seqs = requests.map((r, i) => {
    const s = new ReplicaSeq(i, r.arrival, r.prompt, r.output, r.blockKeys);
    if (r.prefilled) s.numComputed = r.prompt - 1;
    return s;
  });
  const order = [...seqs].sort((a, b) => a.arrival - b.arrival || a.id - b.id);
  const sched = new ReplicaScheduler(o.maxRunning, o.kv, o.maxContext, o.outputReserve);
  const depth = o.cost.depth;
  let now = 0;
  let next = 0;
  let tokens = 0;
  let steps = 0;
  let runningSum = 0;
  let failed = 0;
  while (next < order.length || sched.hasWork) {
    while (next < order.length && order[next]!.arrival <= now) sched.waiting.push(order[next++]!);
    if (!sched.hasWork) {
      now = order[next]!.arrival;
      continue;
    }
    const budget = Math.ceil(o.maxTokensPerStep / depth);
    const share = Math.max(1, Math.ceil((sched.running.length + sched.waiting.length) / depth));
    const batches: ReplicaChunk[][] = [];
    const loads: BatchLoad[] = [];
    for (let k = 0; k < depth; k++) {
      const chunks = sched.schedule(budget, share);
      if (chunks.length === 0) continue;
      for (const c of chunks) c.seq.inFlight = true;
      batches.push(chunks);
      loads.push(loadOf(chunks, o.kv, o.prefillInstances));
    }
    if (batches.length === 0) {
      // Nothing fits even in an empty cache: the runtime fails the head request (EngineCore).
      if (sched.running.length === 0 && sched.waiting.length > 0) {
        sched.waiting.shift()!.status = "done";
        failed++;
        continue;
      }
      throw new Error("replica: no micro-batch could be scheduled");
    }
    now += o.cost.cycle(loads);
    for (const chunks of batches) tokens += sched.land(chunks, now);
    steps++;
    runningSum += sched.running.length;
  }
  return summarize(seqs, tokens, now, sched.preemptions, steps, runningSum, failed);
}

/** What each side computes for a micro-batch's chunks (read before landing: placement changes then). */
function loadOf(chunks: readonly ReplicaChunk[], kv: KvSpace, instances: number): BatchLoad {
  const b: BatchLoad = {
    seqs: chunks.length,
    decodeRows: 0,
    ownDecodeRows: 0,
    ownDecodeCtx: 0,
    ownPrefillTokens: 0,
    ownPrefillWork: 0,
    remote: Array.from({ length: instances }, () => ({
      decodeRows: 0,
      decodeCtx: 0,
      prefillTokens: 0,
      prefillWork: 0,
      streamedTokens: 0,
    })),
  };
  for (const c of chunks) {
    const id = c.seq.id;
    const work = 2 * c.count * (c.start + c.count / 2);
    const target = kv.prefillTarget(id);
    if (target >= 0) {
      const r = b.remote[target]!;
      r.prefillTokens += c.count;
      r.prefillWork += work;
      if (kv.offloadedTo(id) < 0) r.streamedTokens += c.count;
      continue;
    }
    if (c.count > 1) {
      b.ownPrefillTokens += c.count;
      b.ownPrefillWork += work;
      continue;
    }
    b.decodeRows++;
    const where = kv.offloadedTo(id);
    if (where >= 0) {
      b.remote[where]!.decodeRows++;
      b.remote[where]!.decodeCtx += c.start + 1;
    } else {
      b.ownDecodeRows++;
      b.ownDecodeCtx += c.start + 1;
    }
  }
  return b;
}

function summarize(
  seqs: readonly ReplicaSeq[],
  tokens: number,
  seconds: number,
  preemptions: number,
  steps: number,
  runningSum: number,
  failed: number,
): ReplicaResult {
  const served = seqs.filter((s) => s.firstTokenAt >= 0);
  const ttft = served.map((s) => s.firstTokenAt - s.arrival);
  const tpot = served
    .filter((s) => s.generated > 1)
    .map((s) => (s.lastTokenAt - s.firstTokenAt) / (s.generated - 1));
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);
  return {
    outputTokens: tokens,
    seconds,
    throughputTokS: seconds > 0 ? tokens / seconds : 0,
    ttftMeanS: mean(ttft),
    tpotMeanS: mean(tpot),
    preemptions,
    runningMean: steps > 0 ? runningSum / steps : 0,
    steps,
    failed,
    cachedTokens: seqs.reduce((n, s) => n + Math.max(0, s.cachedTokens), 0),
  };
}
