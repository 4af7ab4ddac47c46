import type { BenchmarkMetrics, Distribution } from "./metrics.js";
import type { ServerSide } from "./server-metrics.js";

/** The results table printed at the end of `lamina bench serve` (laid out like vLLM's). */
export function formatReport(
  m: BenchmarkMetrics,
  header: Record<string, string | number>,
  server: ServerSide | null = null,
): string {
  const lines: string[] = [];
  const width = 52;
  const title = (t: string) => {
    const pad = Math.max(0, width - t.length - 2);
    const side = "=".repeat(Math.floor(pad / 2));
    lines.push(`${side} ${t} ${side}${pad % 2 ? "=" : ""}`);
  };
  const row = (label: string, value: string | number) => {
    const v =
      typeof value === "number" ? (Number.isInteger(value) ? String(value) : value.toFixed(2)) : value;
    // Long values (the arrival description) push into the label's padding, keeping the right edge.
    lines.push(
      `${label.padEnd(Math.max(label.length + 1, width - Math.max(12, v.length)))}${v.padStart(12)}`,
    );
  };
  const section = (t: string) => {
    const pad = Math.max(0, width - t.length);
    lines.push(`${"-".repeat(Math.floor(pad / 2))}${t}${"-".repeat(Math.ceil(pad / 2))}`);
  };
  title("Serving Benchmark Result");
  for (const [k, v] of Object.entries(header)) row(`${k}:`, v);
  row("Successful requests:", m.completed);
  row("Failed requests:", m.failed);
  row("Benchmark duration (s):", m.duration_s);
  row("Total input tokens:", m.total_input_tokens);
  row("Total generated tokens:", m.total_output_tokens);
  row("Request throughput (req/s):", m.request_throughput);
  if (m.request_goodput !== null) row("Request goodput (req/s):", m.request_goodput);
  row("Output token throughput (tok/s):", m.output_throughput);
  row("Total token throughput (tok/s):", m.total_token_throughput);
  const dist = (name: string, label: string, d: Distribution) => {
    section(name);
    row(`Mean ${label} (ms):`, d.mean);
    row(`Median ${label} (ms):`, d.median);
    row(`P90 ${label} (ms):`, d.p90);
    row(`P99 ${label} (ms):`, d.p99);
  };
  dist("Time to First Token", "TTFT", m.ttft_ms);
  dist("Time per Output Token (excl. 1st token)", "TPOT", m.tpot_ms);
  dist("Inter-token Latency", "ITL", m.itl_ms);
  dist("End-to-end Latency", "E2EL", m.e2el_ms);
  if (server) {
    const pct = (x: number | null) => (x === null ? "n/a" : `${(x * 100).toFixed(1)}%`);
    section("Server side (from /metrics)");
    row("Engine steps:", server.steps);
    row("Mean generated tokens per step:", server.mean_tokens_per_step ?? "n/a");
    row("Engine busy (% of duration):", pct(server.engine_busy_share));
    row("Pipeline idle (% of step time):", pct(server.pipeline_idle_share));
    row("Preemptions:", server.preemptions);
    row("Prompt tokens from the prefix cache:", pct(server.prefix_cache_hit_share));
    row("Speculative draft tokens kept:", pct(server.draft_kept_share));
  }
  lines.push("=".repeat(width));
  return lines.join("\n");
}
