import type { Limiter } from "./instances.js";
import { LatencyHistogram } from "./stats.js";

/** Everything a run of the event loop counts; simulate() turns it into a SimResult. */
export interface EngineTotals {
  completed: number;
  rejected: number;
  preemptions: number;
  outputTokens: number;
  /** Output tokens the trace asked for (of non-rejected requests): must equal outputTokens. */
  expectedTokens: number;
  makespan: number;
  tbt: LatencyHistogram;
  ttft: LatencyHistogram | null;
  /** Σ batch·dt and Σ dt over decode steps, for the time-weighted average batch. */
  batchTime: number;
  stepTime: number;
  steps: number;
  maxBatch: number;
  /** max over time of KV used / capacity, per pool (must stay ≤ 1). */
  peakKvUtil: number;
  kvUtilTime: number;
  flops: number;
  kvBytesRead: number;
  prefillBusy: number;
  limiterTime: Record<Limiter, number>;
  kvBlockedTime: number;
  batchCapTime: number;
  /** Per-token averages of the step's parts, weighted by decode tokens. */
  partModel: number;
  partAttention: number;
  partNetwork: number;
  partPrefill: number;
  partTotal: number;
  /** Decode tokens produced by steps (the weight of the part averages). */
  decodeTokens: number;
  perRequestFinish: Float64Array;
  /** Prompt tokens of first admissions with prefix caching on, and those of them found cached (null: off). */
  prefix: { queriedTokens: number; hitTokens: number } | null;
  /** When the last request left the waiting queues (end of saturation), and the counters then. */
  saturatedUntil: number;
  tokensWhenSaturated: number;
  batchTimeWhenSaturated: number;
  stepTimeWhenSaturated: number;
}

const LIMITERS: readonly Limiter[] = [
  "model-compute",
  "model-bandwidth",
  "attention-bandwidth",
  "network",
  "latency",
  "prefill",
];

/** All counters at zero; `perRequestFinish` is the run's per-request finish-time array. */
export function emptyTotals(decodeOnly: boolean, perRequestFinish: Float64Array): EngineTotals {
  return {
    completed: 0,
    rejected: 0,
    preemptions: 0,
    outputTokens: 0,
    expectedTokens: 0,
    makespan: 0,
    tbt: new LatencyHistogram(),
    ttft: decodeOnly ? null : new LatencyHistogram(),
    batchTime: 0,
    stepTime: 0,
    steps: 0,
    maxBatch: 0,
    peakKvUtil: 0,
    kvUtilTime: 0,
    flops: 0,
    kvBytesRead: 0,
    prefillBusy: 0,
    limiterTime: Object.fromEntries(LIMITERS.map((l) => [l, 0])) as Record<Limiter, number>,
    kvBlockedTime: 0,
    batchCapTime: 0,
    partModel: 0,
    partAttention: 0,
    partNetwork: 0,
    partPrefill: 0,
    partTotal: 0,
    decodeTokens: 0,
    perRequestFinish,
    prefix: null,
    saturatedUntil: 0,
    tokensWhenSaturated: 0,
    batchTimeWhenSaturated: 0,
    stepTimeWhenSaturated: 0,
  };
}

/** Marks the end of saturation at `now`: the counters then measure capacity without the final drain. */
export function markSaturationEnd(t: EngineTotals, now: number): void {
  t.saturatedUntil = now;
  t.tokensWhenSaturated = t.outputTokens;
  t.batchTimeWhenSaturated = t.batchTime;
  t.stepTimeWhenSaturated = t.stepTime;
}
