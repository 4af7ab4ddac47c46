import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { computeMetrics, meetsSlo, parseSlo, type RequestOutcome, tpot } from "../../src/bench/metrics.js";
import { dispatch } from "../../src/bench/runner.js";
import { serverSide } from "../../src/bench/server-metrics.js";
import { percentile } from "../../src/bench/stats.js";

function outcome(ttft: number, latency: number, outputTokens: number, promptTokens = 10): RequestOutcome {
  const itl = Array.from(
    { length: Math.max(0, outputTokens - 1) },
    () => (latency - ttft) / (outputTokens - 1),
  );
  return { success: true, promptTokens, outputTokens, ttft, itl, latency };
}

describe("bench metric definitions (vLLM bench serve)", () => {
  it("TPOT = (e2el − ttft) / (output_tokens − 1), undefined for one token", () => {
    assert.equal(tpot(outcome(0.5, 2.5, 11)), 0.2);
    assert.equal(tpot(outcome(0.5, 0.5, 1)), null);
  });

  it("percentiles interpolate linearly like numpy", () => {
    assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
    assert.ok(Math.abs(percentile([1, 2, 3, 4], 90) - 3.7) < 1e-12);
    assert.ok(Math.abs(percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 99) - 99.1) < 1e-9);
    assert.equal(percentile([7], 99), 7);
  });

  it("aggregates throughput, latency distributions (ms), failures and goodput on synthetic timings", () => {
    const outcomes: RequestOutcome[] = [
      outcome(0.1, 1.1, 11, 100), // tpot 100 ms
      outcome(0.2, 2.2, 21, 200), // tpot 100 ms
      outcome(0.3, 6.3, 31, 300), // tpot 200 ms
      outcome(0.4, 0.4, 1, 400), // no tpot
      {
        success: false,
        error: "HTTP 429",
        promptTokens: 50,
        outputTokens: 0,
        ttft: 0,
        itl: [],
        latency: 0.01,
      },
    ];
    const slo = { ttft: 350, tpot: 150 };
    const m = computeMetrics(outcomes, 10, slo);
    assert.equal(m.completed, 4);
    assert.equal(m.failed, 1);
    assert.equal(m.total_input_tokens, 1000);
    assert.equal(m.total_output_tokens, 64);
    assert.equal(m.request_throughput, 0.4);
    assert.equal(m.output_throughput, 6.4);
    assert.equal(m.total_token_throughput, 106.4);
    assert.ok(Math.abs(m.ttft_ms.mean - 250) < 1e-9);
    assert.ok(Math.abs(m.ttft_ms.median - 250) < 1e-9);
    assert.ok(Math.abs(m.tpot_ms.mean - 400 / 3) < 1e-9);
    assert.ok(Math.abs(m.tpot_ms.median - 100) < 1e-9);
    // ITL: 10 gaps of 100 ms, 20 of 100 ms, 30 of 200 ms.
    assert.ok(Math.abs(m.itl_ms.mean - (30 * 100 + 30 * 200) / 60) < 1e-9);
    assert.ok(Math.abs(m.e2el_ms.p99 - percentile([1100, 2200, 6300, 400], 99)) < 1e-9);
    // Good: the first two (ttft ≤ 350, tpot ≤ 150); the third fails TPOT, the fourth TTFT.
    assert.equal(m.request_goodput, 0.2);
    assert.equal(computeMetrics(outcomes, 10, null).request_goodput, null);
  });

  it("SLO parsing and checks", () => {
    assert.deepEqual(parseSlo(["ttft:500", "tpot:50", "e2el:10000.5"]), {
      ttft: 500,
      tpot: 50,
      e2el: 10000.5,
    });
    assert.throws(() => parseSlo(["ttft=5"]), /'ttft=5' is not/);
    assert.ok(meetsSlo(outcome(0.1, 1, 2), { e2el: 1000 }));
    assert.ok(!meetsSlo(outcome(0.1, 1.2, 2), { e2el: 1000 }));
  });
});

describe("bench dispatch", () => {
  const job = { prompt: [1], promptLen: 1, maxTokens: 1 };
  const target = { baseUrl: "http://unused", model: "m" };

  it("never exceeds the concurrency limit and completes every job", async () => {
    let active = 0;
    let peak = 0;
    const send = async () => {
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 5));
      active--;
      return outcome(0.001, 0.005, 2);
    };
    let done = 0;
    const jobs = Array.from({ length: 20 }, () => job);
    const r = await dispatch(target, jobs, new Array(20).fill(0), 3, () => done++, send);
    assert.equal(peak, 3);
    assert.equal(done, 20);
    assert.equal(r.outcomes.length, 20);
    assert.ok(r.outcomes.every((o) => o.success));
  });

  it("sends each job no earlier than its arrival time", async () => {
    const sentAt: number[] = [];
    const start = performance.now();
    const send = async () => {
      sentAt.push((performance.now() - start) / 1000);
      return outcome(0.001, 0.002, 2);
    };
    const r = await dispatch(target, [job, job, job], [0, 0.05, 0.1], undefined, () => {}, send);
    assert.ok(sentAt[1]! >= 0.049 && sentAt[2]! >= 0.099, String(sentAt));
    assert.ok(r.durationS >= 0.099);
  });
});

describe("server-side figures from two /metrics scrapes", () => {
  it("differences the counters over the run", () => {
    const before = new Map([
      ["lamina_steps_total", 100],
      ["lamina_generation_tokens_total", 1000],
      ["lamina_step_model_seconds_total", 1],
      ["lamina_step_attention_seconds_total", 1],
      ["lamina_step_transport_seconds_total", 0],
      ["lamina_step_idle_seconds_total", 0],
      ["lamina_preemptions_total", 2],
      ["lamina_prefix_cache_hits_total", 100],
      ["lamina_prefix_cache_queries_total", 400],
      ["lamina_spec_decode_draft_tokens_total", 50],
      ["lamina_spec_decode_accepted_tokens_total", 20],
    ]);
    const after = new Map([
      ["lamina_steps_total", 150],
      ["lamina_generation_tokens_total", 1400],
      ["lamina_step_model_seconds_total", 2.5],
      ["lamina_step_attention_seconds_total", 1.5],
      ["lamina_step_transport_seconds_total", 0.5],
      ["lamina_step_idle_seconds_total", 0.5],
      ["lamina_preemptions_total", 5],
      ["lamina_prefix_cache_hits_total", 400],
      ["lamina_prefix_cache_queries_total", 1400],
      ["lamina_spec_decode_draft_tokens_total", 250],
      ["lamina_spec_decode_accepted_tokens_total", 170],
    ]);
    // Busy 1.5 + 0.5 + 0.5 = 2.5 s of a 5 s run; idle 0.5 s of 3 s of step time.
    const r = serverSide(before, after, 5)!;
    assert.deepEqual(
      { ...r, pipeline_idle_share: null },
      {
        steps: 50,
        mean_tokens_per_step: 8,
        engine_busy_share: 0.5,
        pipeline_idle_share: null,
        preemptions: 3,
        // 300 of the run's 1000 prompt tokens came from the cache.
        prefix_cache_hit_share: 0.3,
        // 150 of the run's 200 draft tokens kept.
        draft_kept_share: 0.75,
      },
    );
    assert.ok(Math.abs(r.pipeline_idle_share! - 1 / 6) < 1e-12);
    assert.equal(serverSide(new Map(), after, 5), null);
  });
});
