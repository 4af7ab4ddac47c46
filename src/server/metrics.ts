import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { EngineStats } from "../engine/api.js";

/** Latency buckets (seconds) spanning a sub-millisecond tiny model to a slow CPU 7B model. */
const LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20,
  40, 80, 160,
];

export interface ServerMetrics {
  readonly registry: Registry;
  readonly ttft: Histogram;
  readonly itl: Histogram;
  readonly e2e: Histogram;
  readonly queueTime: Histogram;
  readonly finished: Counter<"finish_reason">;
  readonly httpErrors: Counter<"status">;
}

/**
 * Prometheus metrics of one server. Latency histograms are observed by the HTTP layer as
 * tokens stream out; everything the engine counts (queue lengths, KV blocks per attention
 * worker, token totals, preemptions, refusals, the per-step time split between the model
 * side, attention side, transport and pipeline idle) is read from engine.stats() at scrape
 * time, so the hot path does no metric work for them.
 */
export function createMetrics(stats: () => EngineStats | null): ServerMetrics {
  const registry = new Registry();
  const metrics = requestMetrics(registry);
  const scrape: Scrape = { snapshot: null, previousTiming: null };
  // Registration order is collection order: the first collector takes the snapshot, the last
  // closes the per-step window, so these calls stay in this order.
  registerLoadGauges(registry, scrape, stats);
  registerOffloadGauges(registry, scrape);
  registerEngineCounters(registry, scrape);
  registerStepGauges(registry, scrape);
  return metrics;
}

/** The metrics the HTTP layer observes itself, per request and per token. */
function requestMetrics(registry: Registry): ServerMetrics {
  const hist = (name: string, help: string) =>
    new Histogram({ name, help, buckets: LATENCY_BUCKETS, registers: [registry] });
  return {
    registry,
    ttft: hist(
      "lamina_time_to_first_token_seconds",
      "Time from request arrival to its first generated token.",
    ),
    itl: hist(
      "lamina_inter_token_latency_seconds",
      "Time between consecutive generated tokens of a request.",
    ),
    e2e: hist("lamina_e2e_request_latency_seconds", "Time from request arrival to its last token."),
    queueTime: hist(
      "lamina_request_queue_time_seconds",
      "Time a request waited in the engine's queue before it was first scheduled.",
    ),
    finished: new Counter({
      name: "lamina_request_finished_total",
      help: "Finished requests by finish reason (stop, length, abort, error).",
      labelNames: ["finish_reason"],
      registers: [registry],
    }),
    httpErrors: new Counter({
      name: "lamina_http_errors_total",
      help: "Requests answered with an error status.",
      labelNames: ["status"],
      registers: [registry],
    }),
  };
}

/** What the engine-derived collectors share, within one scrape and from one scrape to the next. */
interface Scrape {
  /** engine.stats() read once per scrape, so every metric of a scrape describes the same moment. */
  snapshot: EngineStats | null;
  /** The timing totals at the previous scrape: per-step gauges average over the window since. */
  previousTiming: EngineStats["timing"] | null;
}

type Timing = EngineStats["timing"];

function gauge(
  registry: Registry,
  name: string,
  help: string,
  labelNames: string[],
  collect: (g: Gauge) => void,
): Gauge {
  return new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      collect(this);
    },
  });
}

/** Queue lengths and KV cache occupancy; the first of these also refreshes the scrape's snapshot. */
function registerLoadGauges(registry: Registry, scrape: Scrape, stats: () => EngineStats | null): void {
  gauge(registry, "lamina_num_requests_running", "Requests in the running batch.", [], (g) => {
    scrape.snapshot = stats();
    const s = scrape.snapshot;
    g.set(s ? s.running : 0);
  });
  gauge(registry, "lamina_num_requests_waiting", "Requests waiting for admission.", [], (g) =>
    g.set(scrape.snapshot?.waiting ?? 0),
  );
  gauge(
    registry,
    "lamina_kv_output_reserve_ratio",
    "Share of a request's remaining output reserved in KV when it is admitted (1 after a preemption, falling while none happen).",
    [],
    (g) => g.set(scrape.snapshot?.outputReserveRatio ?? 0),
  );
  // Reset first: a worker that left must not keep reporting its last value.
  const perWorker = (name: string, help: string, value: (kv: EngineStats["kv"][number]) => number) =>
    gauge(registry, name, help, ["worker"], (g) => {
      g.reset();
      for (const kv of scrape.snapshot?.kv ?? []) g.set({ worker: kv.worker }, value(kv));
    });
  perWorker("lamina_kv_blocks_used", "KV cache blocks in use per attention worker.", (kv) => kv.usedBlocks);
  perWorker("lamina_kv_blocks_total", "KV cache blocks per attention worker.", (kv) => kv.totalBlocks);
  perWorker(
    "lamina_kv_capacity_tokens",
    "Tokens the KV cache holds per attention worker (blocks times block size).",
    (kv) => kv.capacityTokens,
  );
  gauge(
    registry,
    "lamina_prefix_cache_blocks",
    "KV blocks holding a cached prefix (in use or kept for reuse; blocks not in use are free to evict).",
    [],
    (g) => g.set(scrape.snapshot?.prefixCache.cachedBlocks ?? 0),
  );
  perWorker("lamina_kv_usage_ratio", "Share of KV cache blocks in use per attention worker (0..1).", (kv) =>
    kv.totalBlocks ? kv.usedBlocks / kv.totalBlocks : 0,
  );
}

type Offload = NonNullable<EngineStats["offload"]>;

/** Adrenaline's load-aware offloading (pd / adrenaline placements; 0 in every other placement). */
const OFFLOAD_GAUGES: readonly [name: string, help: string, pick: (o: Offload) => number][] = [
  ["lamina_offload_ratio", "Offloaded / kept decode requests (N/M) now.", (o) => o.ratio],
  [
    "lamina_offload_bound",
    "Load-aware bound on N/M: min(OB_mem, OB_comp) from prefill memory, bandwidth and decode compute headroom.",
    (o) => o.bound,
  ],
  [
    "lamina_offload_limit",
    "The N/M limit offloading decisions follow (the bound, a fixed --offload-ratio, or 0 in pd mode).",
    (o) => o.limit,
  ],
  [
    "lamina_offloaded_requests",
    "Decode requests whose attention and KV live on prefill instances (N).",
    (o) => o.offloaded,
  ],
  ["lamina_kept_requests", "Decode requests attended locally (M).", (o) => o.kept],
];

function registerOffloadGauges(registry: Registry, scrape: Scrape): void {
  for (const [name, help, pick] of OFFLOAD_GAUGES)
    gauge(registry, name, help, [], (g) => {
      g.reset();
      const o = scrape.snapshot?.offload;
      if (o) g.set(pick(o));
    });
}

/** The model plane's link counters (EngineStats.modelPlane), each exported as lamina_model_plane_<name>_total. */
const MODEL_PLANE_COUNTERS: readonly [
  name: string,
  help: string,
  key: keyof NonNullable<EngineStats["modelPlane"]>,
][] = [
  ["frames_sent", "Model-plane frames the front end sent.", "framesOut"],
  ["frames_received", "Model-plane frames the front end received (logits, failures, progress).", "framesIn"],
  ["bytes_sent", "Model-plane payload bytes sent.", "bytesOut"],
  ["bytes_received", "Model-plane payload bytes received.", "bytesIn"],
  ["stale_frames", "Model-plane frames dropped because their step was given up (a recovery).", "stale"],
  ["malformed_frames", "Model-plane frames refused as malformed (their link closed).", "malformed"],
];

/** Counters whose value is the engine's own running total. */
const ENGINE_COUNTERS: readonly [name: string, help: string, value: (s: EngineStats) => number][] = [
  ["lamina_prompt_tokens_total", "Prompt tokens processed.", (s) => s.promptTokens],
  ["lamina_generation_tokens_total", "Tokens generated.", (s) => s.generationTokens],
  ["lamina_preemptions_total", "Requests preempted to free KV cache.", (s) => s.preemptions],
  [
    "lamina_prefix_cache_queries_total",
    "Prompt tokens looked up in the prefix cache (each request's first admission).",
    (s) => s.prefixCache.queriedTokens,
  ],
  [
    "lamina_prefix_cache_hits_total",
    "Prompt tokens whose KV the prefix cache held (not computed again).",
    (s) => s.prefixCache.hitTokens,
  ],
  [
    "lamina_spec_decode_draft_tokens_total",
    "Draft tokens speculative decoding proposed (prompt lookup).",
    (s) => s.speculation.draftTokens,
  ],
  [
    "lamina_spec_decode_accepted_tokens_total",
    "Draft tokens the model drew too (kept without a step of their own).",
    (s) => s.speculation.acceptedTokens,
  ],
  ["lamina_requests_refused_total", "Requests refused because the waiting queue was full.", (s) => s.refused],
  ["lamina_steps_total", "Engine decode/prefill steps.", (s) => s.timing.steps],
  ["lamina_step_model_seconds_total", "Time spent in non-attention model slices.", (s) => s.timing.model],
  [
    "lamina_step_attention_seconds_total",
    "Time spent in attention (all workers).",
    (s) => s.timing.attention,
  ],
  [
    "lamina_step_transport_seconds_total",
    "Time spent moving tensors between workers.",
    (s) => s.timing.transport,
  ],
  [
    "lamina_transport_poll_seconds_total",
    "CPU time the model side spent busy-polling its attention links (the spin budget's cost).",
    (s) => s.timing.polling,
  ],
  [
    "lamina_step_idle_seconds_total",
    "Pipeline bubbles: time a side waited on the other.",
    (s) => s.timing.idle,
  ],
  // The front end's links of a model plane over TCP (--model-plane tcp; 0 otherwise).
  ...MODEL_PLANE_COUNTERS.map(([name, help, key]): [string, string, (s: EngineStats) => number] => [
    `lamina_model_plane_${name}_total`,
    help,
    (s) => s.modelPlane?.[key] ?? 0,
  ]),
];

/** The engine keeps the totals; a scrape copies them in (no snapshot yet: keep the last value). */
function registerEngineCounters(registry: Registry, scrape: Scrape): void {
  for (const [name, help, value] of ENGINE_COUNTERS)
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const s = scrape.snapshot;
        if (!s) return;
        this.reset();
        this.inc(value(s));
      },
    });
}

/** Per-step means over the interval since the previous scrape (whole run on the first). */
const PER_STEP_GAUGES: readonly [name: string, help: string, pick: (t: Timing) => number][] = [
  ["lamina_step_model_seconds", "Mean model-side time per step since the last scrape.", (t) => t.model],
  [
    "lamina_step_attention_seconds",
    "Mean attention time per step since the last scrape.",
    (t) => t.attention,
  ],
  [
    "lamina_step_transport_seconds",
    "Mean transport time per step since the last scrape.",
    (t) => t.transport,
  ],
];

function registerStepGauges(registry: Registry, scrape: Scrape): void {
  for (const [name, help, pick] of PER_STEP_GAUGES)
    gauge(registry, name, help, [], (g) => {
      const t = scrape.snapshot?.timing;
      if (!t) return g.set(0);
      const p = scrape.previousTiming;
      const steps = t.steps - (p?.steps ?? 0);
      g.set(steps > 0 ? (pick(t) - (p ? pick(p) : 0)) / steps : 0);
    });
  gauge(
    registry,
    "lamina_pipeline_idle_ratio",
    "Share of step time the pipeline sat idle since the last scrape (0..1).",
    [],
    (g) => {
      const t = scrape.snapshot?.timing;
      if (!t) return g.set(0);
      const p = scrape.previousTiming;
      const d = (f: (x: Timing) => number) => f(t) - (p ? f(p) : 0);
      const total = d((x) => x.model) + d((x) => x.attention) + d((x) => x.transport) + d((x) => x.idle);
      g.set(total > 0 ? d((x) => x.idle) / total : 0);
      // This is the last collector registered, so the window closes here.
      scrape.previousTiming = t;
    },
  );
}
