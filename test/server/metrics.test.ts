import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { EngineStats } from "../../src/engine/api.js";
import { DEFAULT_BLOCK_SIZE } from "../../src/placement/sizes.js";
import { createMetrics } from "../../src/server/metrics.js";
import { type LiveServer, startServer, waitFor } from "./helpers.js";

/** `name{labels} value` lines of a Prometheus text page, as a map. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe("GET /metrics (stories260K, real engine)", () => {
  let s: LiveServer;
  before(async () => {
    s = await startServer();
  });
  after(() => s.close());

  it("counts requests in the latency histograms and mirrors the engine's token counters", async () => {
    const before = samples(await (await fetch(`${s.url}/metrics`)).text());
    assert.equal(before.get("lamina_time_to_first_token_seconds_count"), 0);
    await Promise.all(
      [8, 12, 16].map((n) =>
        s.client.completions.create({
          model: "stories260K",
          prompt: "Once upon a time",
          max_tokens: n,
          temperature: 0,
        }),
      ),
    );
    const res = await fetch(`${s.url}/metrics`);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
    const m = samples(await res.text());
    assert.equal(m.get("lamina_time_to_first_token_seconds_count"), 3);
    assert.equal(m.get("lamina_e2e_request_latency_seconds_count"), 3);
    assert.equal(m.get("lamina_request_queue_time_seconds_count"), 3, "every request reports its queue time");
    // One inter-token gap per token after the first.
    assert.equal(m.get("lamina_inter_token_latency_seconds_count"), 7 + 11 + 15);
    assert.equal(m.get('lamina_request_finished_total{finish_reason="length"}'), 3);
    assert.equal(m.get("lamina_generation_tokens_total"), 36);
    assert.equal(m.get("lamina_prompt_tokens_total"), 15);
    assert.equal(m.get("lamina_num_requests_running"), 0);
    assert.equal(m.get('lamina_kv_blocks_used{worker="local"}'), 0);
    assert.ok((m.get('lamina_kv_blocks_total{worker="local"}') ?? 0) > 0);
    // The live engine's capacity in tokens: its blocks times the block size (the default here).
    assert.equal(
      m.get('lamina_kv_capacity_tokens{worker="local"}'),
      (m.get('lamina_kv_blocks_total{worker="local"}') ?? 0) * DEFAULT_BLOCK_SIZE,
    );
    assert.ok((m.get("lamina_steps_total") ?? 0) >= 16);
    assert.ok((m.get("lamina_step_model_seconds_total") ?? 0) > 0);
    assert.ok((m.get("lamina_step_model_seconds") ?? 0) > 0, "per-step model time over the scrape window");
  });

  it("a request queued behind a held engine reports at least the time it was held", async () => {
    const page = async () => samples(await (await fetch(`${s.url}/metrics`)).text());
    const before = await page();
    s.engine.hold();
    const pending = s.client.completions.create({ model: "stories260K", prompt: "Once", max_tokens: 2 });
    assert.ok(await waitFor(() => s.engine.stats().waiting === 1), "queued");
    const heldFrom = performance.now();
    await new Promise((r) => setTimeout(r, 100)); // the time it spends queued, not an ordering
    const held = (performance.now() - heldFrom) / 1000;
    s.engine.release();
    await pending;
    const after = await page();
    const count = (m: Map<string, number>) => m.get("lamina_request_queue_time_seconds_count") ?? 0;
    const sum = (m: Map<string, number>) => m.get("lamina_request_queue_time_seconds_sum") ?? 0;
    assert.equal(count(after) - count(before), 1);
    assert.ok(sum(after) - sum(before) >= held, `queue time ${sum(after) - sum(before)} s ≥ held ${held} s`);
  });

  it("counts error responses by status", async () => {
    await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{",
    });
    const m = samples(await (await fetch(`${s.url}/metrics`)).text());
    assert.ok((m.get('lamina_http_errors_total{status="400"}') ?? 0) >= 1);
  });
});

describe("engine-derived metrics", () => {
  const stats = (over: Partial<EngineStats>): EngineStats => ({
    running: 5,
    peakRunning: 5,
    readiness: { ready: true },
    waiting: 2,
    kv: [
      { worker: "attn-0", usedBlocks: 30, totalBlocks: 100, capacityTokens: 1600 },
      { worker: "attn-1", usedBlocks: 10, totalBlocks: 100, capacityTokens: 3200 },
    ],
    preemptions: 4,
    outputReserveRatio: 0.25,
    refused: 7,
    promptTokens: 1000,
    generationTokens: 500,
    prefixCache: { enabled: true, queriedTokens: 900, hitTokens: 640, cachedBlocks: 12 },
    speculation: { enabled: true, draftTokens: 300, acceptedTokens: 120, draftSteps: 110 },
    timing: { model: 2, attention: 1, transport: 0.5, idle: 0.5, steps: 100, polling: 0.25 },
    ...over,
  });

  it("reports per-worker KV, queue gauges, counters, and per-step times and idle share between scrapes", async () => {
    let current = stats({});
    const metrics = createMetrics(() => current);
    let m = samples(await metrics.registry.metrics());
    assert.equal(m.get('lamina_kv_blocks_used{worker="attn-0"}'), 30);
    assert.equal(m.get('lamina_kv_blocks_used{worker="attn-1"}'), 10);
    assert.equal(m.get('lamina_kv_usage_ratio{worker="attn-0"}'), 0.3);
    assert.equal(m.get('lamina_kv_capacity_tokens{worker="attn-1"}'), 3200);
    assert.equal(m.get("lamina_num_requests_running"), 5);
    assert.equal(m.get("lamina_num_requests_waiting"), 2);
    assert.equal(m.get("lamina_preemptions_total"), 4);
    assert.equal(m.get("lamina_kv_output_reserve_ratio"), 0.25);
    assert.equal(m.get("lamina_requests_refused_total"), 7);
    assert.equal(m.get("lamina_prefix_cache_queries_total"), 900);
    assert.equal(m.get("lamina_prefix_cache_hits_total"), 640);
    assert.equal(m.get("lamina_prefix_cache_blocks"), 12);
    assert.equal(m.get("lamina_spec_decode_draft_tokens_total"), 300);
    assert.equal(m.get("lamina_spec_decode_accepted_tokens_total"), 120);
    assert.equal(m.get("lamina_step_model_seconds"), 0.02);
    assert.equal(m.get("lamina_step_transport_seconds"), 0.005);
    assert.equal(m.get("lamina_pipeline_idle_ratio"), 0.125);
    // The next scrape looks only at what happened since the previous one.
    assert.equal(m.get("lamina_transport_poll_seconds_total"), 0.25);
    current = stats({
      timing: { model: 3, attention: 2, transport: 0.5, idle: 2.5, steps: 150, polling: 0.5 },
    });
    m = samples(await metrics.registry.metrics());
    assert.equal(m.get("lamina_step_model_seconds"), 0.02);
    assert.equal(m.get("lamina_step_attention_seconds"), 0.02);
    assert.equal(m.get("lamina_pipeline_idle_ratio"), 0.5);
    assert.equal(m.get("lamina_step_idle_seconds_total"), 2.5);
  });

  it("reports Adrenaline's offload ratio, bound and limit when the placement offloads, and zeros otherwise", async () => {
    const offload = { ratio: 0.5, offloaded: 3, kept: 6, bound: 0.8, limit: 0.8 };
    let m = samples(await createMetrics(() => stats({ offload })).registry.metrics());
    assert.equal(m.get("lamina_offload_ratio"), 0.5);
    assert.equal(m.get("lamina_offload_bound"), 0.8);
    assert.equal(m.get("lamina_offload_limit"), 0.8);
    assert.equal(m.get("lamina_offloaded_requests"), 3);
    assert.equal(m.get("lamina_kept_requests"), 6);
    m = samples(await createMetrics(() => stats({})).registry.metrics());
    assert.equal(m.get("lamina_offload_ratio"), 0);
    assert.equal(m.get("lamina_offloaded_requests"), 0);
  });

  it("reports zeros while the engine is loading", async () => {
    const m = samples(await createMetrics(() => null).registry.metrics());
    assert.equal(m.get("lamina_num_requests_running"), 0);
    assert.equal(m.get("lamina_pipeline_idle_ratio"), 0);
  });
});
