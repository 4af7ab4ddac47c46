import { mean, percentile, std } from "./stats.js";

/** What one request looked like from the client (seconds, measured with performance.now()). */
export interface RequestOutcome {
  readonly success: boolean;
  readonly error?: string;
  readonly promptTokens: number;
  readonly outputTokens: number;
  /** Request sent → first token. */
  readonly ttft: number;
  /** Gaps between consecutive streamed chunks that carried tokens. */
  readonly itl: readonly number[];
  /** Request sent → last token (end-to-end latency). */
  readonly latency: number;
}

/** Service-level objectives in milliseconds; a request is "good" when it meets every one given. */
export interface Slo {
  readonly ttft?: number;
  readonly tpot?: number;
  readonly e2el?: number;
}

export interface Distribution {
  mean: number;
  median: number;
  std: number;
  p90: number;
  p99: number;
}

export interface BenchmarkMetrics {
  completed: number;
  failed: number;
  duration_s: number;
  total_input_tokens: number;
  total_output_tokens: number;
  request_throughput: number;
  output_throughput: number;
  total_token_throughput: number;
  /** Good requests per second (null when no SLO was given). */
  request_goodput: number | null;
  /** All latencies in milliseconds. */
  ttft_ms: Distribution;
  tpot_ms: Distribution;
  itl_ms: Distribution;
  e2el_ms: Distribution;
}

/**
 * Time per output token with vLLM's definition: the decode time after the first token spread
 * over the remaining tokens, (e2el − ttft) / (output_tokens − 1); undefined for one token.
 */
export function tpot(o: RequestOutcome): number | null {
  return o.outputTokens > 1 ? (o.latency - o.ttft) / (o.outputTokens - 1) : null;
}

function distribution(secondsList: readonly number[]): Distribution {
  const ms = secondsList.map((s) => s * 1000);
  return {
    mean: mean(ms),
    median: percentile(ms, 50),
    std: std(ms),
    p90: percentile(ms, 90),
    p99: percentile(ms, 99),
  };
}

/** Whether a finished request met every given SLO (ms). A one-token request has no TPOT to fail. */
export function meetsSlo(o: RequestOutcome, slo: Slo): boolean {
  if (slo.ttft !== undefined && o.ttft * 1000 > slo.ttft) return false;
  const t = tpot(o);
  if (slo.tpot !== undefined && t !== null && t * 1000 > slo.tpot) return false;
  if (slo.e2el !== undefined && o.latency * 1000 > slo.e2el) return false;
  return true;
}

/** Aggregates outcomes over a run that lasted `durationS` seconds (first send → last reply). */
export function computeMetrics(
  outcomes: readonly RequestOutcome[],
  durationS: number,
  slo: Slo | null,
): BenchmarkMetrics {
  const ok = outcomes.filter((o) => o.success);
  let input = 0;
  let output = 0;
  const ttfts: number[] = [];
  const tpots: number[] = [];
  const itls: number[] = [];
  const e2els: number[] = [];
  let good = 0;
  for (const o of ok) {
    input += o.promptTokens;
    output += o.outputTokens;
    ttfts.push(o.ttft);
    const t = tpot(o);
    if (t !== null) tpots.push(t);
    for (const gap of o.itl) itls.push(gap);
    e2els.push(o.latency);
    if (slo && meetsSlo(o, slo)) good++;
  }
  const d = durationS > 0 ? durationS : Number.NaN;
  return {
    completed: ok.length,
    failed: outcomes.length - ok.length,
    duration_s: durationS,
    total_input_tokens: input,
    total_output_tokens: output,
    request_throughput: ok.length / d,
    output_throughput: output / d,
    total_token_throughput: (input + output) / d,
    request_goodput: slo ? good / d : null,
    ttft_ms: distribution(ttfts),
    tpot_ms: distribution(tpots),
    itl_ms: distribution(itls),
    e2el_ms: distribution(e2els),
  };
}

/** Parses `ttft:500 tpot:50 e2el:10000` (ms) from --goodput. */
export function parseSlo(parts: readonly string[]): Slo {
  const slo: { ttft?: number; tpot?: number; e2el?: number } = {};
  for (const part of parts) {
    const m = /^(ttft|tpot|e2el):(\d+(?:\.\d+)?)$/.exec(part.trim());
    if (!m) throw new Error(`--goodput: '${part}' is not ttft:MS, tpot:MS or e2el:MS`);
    slo[m[1] as "ttft" | "tpot" | "e2el"] = Number(m[2]);
  }
  if (Object.keys(slo).length === 0)
    throw new Error("--goodput needs at least one of ttft:MS tpot:MS e2el:MS");
  return slo;
}
