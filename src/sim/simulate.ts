import { runEngine } from "./engine.js";
import type { Limiter } from "./instances.js";
import { type Placement, placementLabel } from "./placement.js";
import { buildSetup, type SimOptions } from "./setup.js";
import { type Trace, traceStats } from "./trace.js";

export interface LatencySummaryMs {
  mean: number;
  p50: number;
  p99: number;
}

/** One run's outputs (all plain data: printed as a table or written as JSON). */
export interface SimResult {
  label: string;
  placement: Placement;
  model: string;
  trace: string;
  requests: number;
  completed: number;
  rejected: number;
  preemptions: number;
  outputTokens: number;
  makespanS: number;
  throughputTokS: number;
  /**
   * Throughput while requests were still waiting (until the last one was admitted): the capacity of the
   * configuration, free of the drain at the end of a saturated run.
   */
  saturatedThroughputTokS: number;
  /** Average batch over the same window. */
  saturatedAvgBatch: number;
  pricePerHour: number;
  /** Output tokens per dollar of cluster time. */
  tokensPerDollar: number;
  tbtMs: LatencySummaryMs;
  ttftMs: LatencySummaryMs | null;
  avgBatch: number;
  maxBatch: number;
  kvCapacityTokens: number;
  peakKvUtil: number;
  avgKvUtil: number;
  utilization: {
    /** Achieved non-attention FLOP/s over the model devices' peak. */
    modelCompute: number;
    /** KV bytes read per second over the attention devices' peak bandwidth. */
    attentionBandwidth: number;
    /** Busy share of the prefill instances (PD/Adrenaline). */
    prefill: number | null;
  };
  /** Mean per-token step time split into its parts (ms); wait = pipeline bubbles and queueing on shared parts. */
  tbtBreakdownMs: { model: number; attention: number; network: number; prefill: number; wait: number };
  /** Share of decode time each resource bounded the step. */
  limiters: Record<Limiter, number>;
  /** Share of decode time new requests waited for KV capacity / for the batch cap. */
  admission: { kvBlocked: number; batchCap: number };
  bottleneck: string;
  /**
   * Prefix caching (decode instances that prefill their own prompts, on a trace that records shared
   * prefix blocks): prompt tokens of first admissions, those found cached, and their share; null
   * where it is not modelled.
   */
  prefixCache: { queriedTokens: number; hitTokens: number; hitShare: number } | null;
  notes: string[];
  wallMs: number;
}

function summarize(h: { mean(): number; quantile(q: number): number; count: number }): LatencySummaryMs {
  if (h.count === 0) return { mean: Number.NaN, p50: Number.NaN, p99: Number.NaN };
  return { mean: h.mean() * 1e3, p50: h.quantile(0.5) * 1e3, p99: h.quantile(0.99) * 1e3 };
}

const LIMITER_WORDS: Record<Limiter, string> = {
  "model-compute": "compute of the model (non-attention) devices",
  "model-bandwidth": "memory bandwidth of the model devices (weight streaming)",
  "attention-bandwidth": "memory bandwidth of the attention devices",
  network: "network between model and attention parts",
  latency: "the per-layer dependency chain (latency)",
  prefill: "prefill work",
};

/** Says in words what limited a run: the dominant step limiter, and whether KV capacity capped the batch. */
export function explainBottleneck(r: Pick<SimResult, "limiters" | "admission" | "avgKvUtil">): string {
  let top: Limiter = "model-bandwidth";
  for (const k of Object.keys(r.limiters) as Limiter[]) if (r.limiters[k] > r.limiters[top]) top = k;
  const parts = [`steps bounded by ${LIMITER_WORDS[top]} (${(r.limiters[top] * 100).toFixed(0)}% of time)`];
  if (r.admission.kvBlocked > 0.2) {
    parts.unshift(
      `KV capacity (requests waited for KV ${(r.admission.kvBlocked * 100).toFixed(0)}% of the time, KV ${(r.avgKvUtil * 100).toFixed(0)}% full)`,
    );
  } else if (r.admission.batchCap > 0.2) {
    parts.unshift(`the batch cap (${(r.admission.batchCap * 100).toFixed(0)}% of the time)`);
  }
  return parts.join("; ");
}

export function simulate(trace: Trace, o: SimOptions): SimResult {
  const t0 = performance.now();
  const ts = traceStats(trace);
  const meanContext = o.meanContext ?? ts.meanPrompt + ts.meanOutput / 2;
  const setup = buildSetup(o, meanContext);
  const e = runEngine(trace, setup, o.model);
  if (e.outputTokens !== e.expectedTokens || e.completed + e.rejected !== ts.requests) {
    throw new Error(
      `simulator invariant broken (${placementLabel(o.placement)}): ${e.completed}+${e.rejected} of ${ts.requests} requests, ` +
        `${e.outputTokens} of ${e.expectedTokens} tokens`,
    );
  }
  const span = e.makespan > 0 ? e.makespan : 1;
  const modelPeak = setup.instances.reduce((s, i) => s + i.modelPeakFlops, 0);
  const attPeak = setup.instances.reduce((s, i) => s + i.attentionPeakBandwidth, 0);
  const limiters = { ...e.limiterTime };
  for (const k of Object.keys(limiters) as Limiter[])
    limiters[k] = e.stepTime > 0 ? limiters[k] / e.stepTime : 0;
  const perTok = (x: number) => (e.decodeTokens > 0 ? (x / e.decodeTokens) * 1e3 : 0);
  const tbtBreakdownMs = {
    model: perTok(e.partModel),
    attention: perTok(e.partAttention),
    network: perTok(e.partNetwork),
    prefill: perTok(e.partPrefill),
    wait: 0,
  };
  const meanStepMs = perTok(e.partTotal);
  tbtBreakdownMs.wait = Math.max(
    0,
    meanStepMs -
      tbtBreakdownMs.model -
      tbtBreakdownMs.attention -
      tbtBreakdownMs.network -
      tbtBreakdownMs.prefill,
  );
  const throughput = e.outputTokens / span;
  const partial = {
    limiters,
    admission: {
      kvBlocked: e.kvBlockedTime / (e.stepTime || 1),
      batchCap: e.batchCapTime / (e.stepTime || 1),
    },
    avgKvUtil: e.kvUtilTime / (e.stepTime || 1),
  };
  return {
    label: placementLabel(o.placement),
    placement: o.placement,
    model: o.model.name,
    trace: trace.name,
    requests: ts.requests,
    completed: e.completed,
    rejected: e.rejected,
    preemptions: e.preemptions,
    outputTokens: e.outputTokens,
    makespanS: e.makespan,
    throughputTokS: throughput,
    saturatedThroughputTokS: e.saturatedUntil > 0 ? e.tokensWhenSaturated / e.saturatedUntil : throughput,
    saturatedAvgBatch:
      e.stepTimeWhenSaturated > 0
        ? e.batchTimeWhenSaturated / e.stepTimeWhenSaturated
        : e.stepTime > 0
          ? e.batchTime / e.stepTime
          : 0,
    pricePerHour: setup.pricePerHour,
    tokensPerDollar: (throughput * 3600) / setup.pricePerHour,
    tbtMs: summarize(e.tbt),
    ttftMs: e.ttft ? summarize(e.ttft) : null,
    avgBatch: e.stepTime > 0 ? e.batchTime / e.stepTime : 0,
    maxBatch: e.maxBatch,
    kvCapacityTokens: setup.instances.reduce((s, i) => s + i.localCapacity + i.remoteCapacity, 0),
    peakKvUtil: e.peakKvUtil,
    avgKvUtil: partial.avgKvUtil,
    utilization: {
      modelCompute: e.flops / (modelPeak * span),
      attentionBandwidth: e.kvBytesRead / (attPeak * span),
      prefill: setup.prefillServers.length > 0 ? e.prefillBusy / (setup.prefillServers.length * span) : null,
    },
    tbtBreakdownMs,
    limiters,
    admission: partial.admission,
    bottleneck: explainBottleneck(partial),
    prefixCache: e.prefix
      ? {
          ...e.prefix,
          hitShare: e.prefix.queriedTokens > 0 ? e.prefix.hitTokens / e.prefix.queriedTokens : 0,
        }
      : null,
    notes: setup.notes,
    wallMs: performance.now() - t0,
  };
}
