import { authHeaders } from "./client.js";

/** Counters scraped from the server's Prometheus page (`name` or `name{labels}` → value). */
export type Scrape = Map<string, number>;

/** Reads /metrics; null when the server has none (the benchmark then reports client-side figures only). */
export async function scrapeMetrics(baseUrl: string, apiKey?: string): Promise<Scrape | null> {
  try {
    const res = await fetch(`${baseUrl}/metrics`, { headers: authHeaders(apiKey) });
    if (!res.ok) return null;
    const out: Scrape = new Map();
    for (const line of (await res.text()).split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const i = line.lastIndexOf(" ");
      const v = Number(line.slice(i + 1));
      if (Number.isFinite(v)) out.set(line.slice(0, i), v);
    }
    return out;
  } catch {
    return null;
  }
}

export interface ServerSide {
  /** Engine steps taken during the run. */
  steps: number;
  /** Generated tokens per step: the mean decode batch the engine ran. */
  mean_tokens_per_step: number | null;
  /** Share of the run's wall time the engine spent computing steps (model + attention + transport). */
  engine_busy_share: number | null;
  /** Share of step time spent in pipeline bubbles (disaggregated placements). */
  pipeline_idle_share: number | null;
  preemptions: number;
  /** Share of the run's prompt tokens the server's prefix cache held (null: the server reports none). */
  prefix_cache_hit_share: number | null;
  /** Share of the run's speculative draft tokens the model drew too (null: no drafts, or none reported). */
  draft_kept_share: number | null;
}

/** What the server did between two scrapes taken around a run of `durationS` seconds. */
export function serverSide(before: Scrape, after: Scrape, durationS: number): ServerSide | null {
  const d = (name: string) => {
    const a = after.get(name);
    const b = before.get(name);
    return a === undefined || b === undefined ? null : a - b;
  };
  const steps = d("lamina_steps_total");
  if (steps === null) return null;
  const model = d("lamina_step_model_seconds_total") ?? 0;
  const attention = d("lamina_step_attention_seconds_total") ?? 0;
  const transport = d("lamina_step_transport_seconds_total") ?? 0;
  const idle = d("lamina_step_idle_seconds_total") ?? 0;
  const generated = d("lamina_generation_tokens_total");
  const busy = model + attention + transport;
  return {
    steps,
    mean_tokens_per_step: steps > 0 && generated !== null ? generated / steps : null,
    engine_busy_share: durationS > 0 ? busy / durationS : null,
    pipeline_idle_share: busy + idle > 0 ? idle / (busy + idle) : null,
    preemptions: d("lamina_preemptions_total") ?? 0,
    prefix_cache_hit_share: hitShare(
      d("lamina_prefix_cache_hits_total"),
      d("lamina_prefix_cache_queries_total"),
    ),
    draft_kept_share: hitShare(
      d("lamina_spec_decode_accepted_tokens_total"),
      d("lamina_spec_decode_draft_tokens_total"),
    ),
  };
}

function hitShare(hits: number | null, queries: number | null): number | null {
  return hits === null || queries === null || queries === 0 ? null : hits / queries;
}
