import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { BandwidthPoint } from "./bandwidth.js";
import type { PlanOutcome } from "./planner.js";
import type { SimResult } from "./simulate.js";
import { lineChart, scatterChart, stackedBarChart } from "./svg.js";

/** Text tables and files (JSON next to SVG charts) for simulator and planner results. */

const f0 = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : "-");
const f1 = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : "-");

export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n") + "\n";
}

export function formatSimResult(r: SimResult): string {
  const lines = [
    `${r.label} · ${r.model} · ${r.trace}`,
    `  requests ${r.completed}/${r.requests} completed (${r.rejected} rejected, ${r.preemptions} preemptions), ${r.outputTokens} output tokens in ${f1(r.makespanS)} s`,
    `  throughput ${f0(r.throughputTokS)} tok/s · $${r.pricePerHour.toFixed(2)}/h · ${f0(r.tokensPerDollar)} tokens/$` +
      ` · while saturated ${f0(r.saturatedThroughputTokS)} tok/s at batch ${f1(r.saturatedAvgBatch)}`,
    `  TBT ms mean ${f1(r.tbtMs.mean)} p50 ${f1(r.tbtMs.p50)} p99 ${f1(r.tbtMs.p99)}` +
      (r.ttftMs
        ? ` · TTFT ms mean ${f0(r.ttftMs.mean)} p50 ${f0(r.ttftMs.p50)} p99 ${f0(r.ttftMs.p99)}`
        : " · TTFT not modelled (decode only)"),
    `  batch avg ${f1(r.avgBatch)} max ${r.maxBatch} · KV capacity ${r.kvCapacityTokens} tokens, ${f0(r.avgKvUtil * 100)}% avg / ${f0(r.peakKvUtil * 100)}% peak`,
    `  utilization: model MFU ${f1(r.utilization.modelCompute * 100)}% · attention bandwidth ${f1(r.utilization.attentionBandwidth * 100)}%` +
      (r.utilization.prefill !== null ? ` · prefill busy ${f0(r.utilization.prefill * 100)}%` : ""),
    `  TBT breakdown ms: model ${f1(r.tbtBreakdownMs.model)} attention ${f1(r.tbtBreakdownMs.attention)} network ${f1(r.tbtBreakdownMs.network)} prefill ${f1(r.tbtBreakdownMs.prefill)} wait ${f1(r.tbtBreakdownMs.wait)}`,
    `  limited by: ${r.bottleneck}`,
    ...(r.prefixCache
      ? [
          `  prefix cache: ${f1(r.prefixCache.hitShare * 100)}% of prompt tokens found cached (${r.prefixCache.hitTokens} of ${r.prefixCache.queriedTokens})`,
        ]
      : []),
    ...r.notes.map((n) => `  note: ${n}`),
    `  simulated in ${f0(r.wallMs)} ms`,
  ];
  return lines.join("\n") + "\n";
}

export function formatPlan(p: PlanOutcome, top = 15): string {
  const rows = p.ranked
    .slice(0, top)
    .map((e, i) => [
      String(i + 1),
      e.result.label,
      `$${e.result.pricePerHour.toFixed(2)}`,
      f0(e.throughputTokS),
      f0(e.tokensPerDollar),
      f1(e.result.tbtMs.p99),
      f0(e.result.avgBatch),
      e.meetsSlo ? "yes" : "no",
    ]);
  let s = formatTable(["#", "configuration", "$/h", "tok/s", "tok/$", "TBT p99", "batch", "SLO"], rows);
  s += `\n${p.simulated} configurations simulated in ${(p.wallMs / 1e3).toFixed(1)} s; ${p.infeasible.length} infeasible.\n`;
  s += `\nWinner: ${p.explanation}\n`;
  return s;
}

export function writeJson(dir: string, name: string, data: unknown): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  writeFileSync(
    file,
    JSON.stringify(data, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2),
  );
  return file;
}

export function writeText(dir: string, name: string, text: string): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

export function tbtBreakdownSvg(title: string, results: SimResult[]): string {
  return stackedBarChart(
    title,
    "ms per token",
    results.map((r) => ({ label: r.label, parts: { ...r.tbtBreakdownMs } })),
  );
}

export function costScatterSvg(
  title: string,
  entries: Array<{ result: SimResult; throughputTokS: number }>,
): string {
  return scatterChart(
    title,
    "cluster price ($/h)",
    "output throughput (tok/s)",
    entries.map((e) => ({
      x: e.result.pricePerHour,
      y: e.throughputTokS,
      group: e.result.placement.kind,
      label: e.result.label,
    })),
  );
}

/** Writes plan.json, plan-cost.svg and plan-tbt.svg; returns the paths. */
export function writePlanFiles(dir: string, p: PlanOutcome, meta: object): string[] {
  const results = p.ranked.map((e) => e.result);
  return [
    writeJson(dir, "plan.json", { ...meta, ...p }),
    writeText(dir, "plan-cost.svg", costScatterSvg("Throughput vs cost per configuration", p.ranked)),
    writeText(dir, "plan-tbt.svg", tbtBreakdownSvg("TBT breakdown (top 12)", results.slice(0, 12))),
  ];
}

export function bandwidthSvg(
  title: string,
  series: Array<{ name: string; points: BandwidthPoint[] }>,
  limit?: number,
): string {
  return lineChart(
    title,
    "batch size",
    "minimum bandwidth (GB/s)",
    series.map((s) => ({
      name: s.name,
      points: s.points.map((p) => [p.batch, p.bandwidth / 1e9] as [number, number]),
    })),
    limit,
  );
}
