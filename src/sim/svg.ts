/**
 * Minimal SVG charts (no dependencies): scatter, line and stacked-bar plots with axes, ticks,
 * labels and a legend, readable in any browser.
 */

const W = 760;
const H = 460;
const M = { left: 70, right: 180, top: 40, bottom: 60 };
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(v / 1e3).toPrecision(3)}k`;
  return Number(v.toPrecision(4)).toString();
}

interface Frame {
  x: (v: number) => number;
  y: (v: number) => number;
  parts: string[];
}

function frame(
  title: string,
  xLabel: string,
  yLabel: string,
  xr: [number, number],
  yr: [number, number],
  xTicks = true,
): Frame {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (v: number) => M.left + ((v - xr[0]) / (xr[1] - xr[0] || 1)) * pw;
  const y = (v: number) => M.top + ph - ((v - yr[0]) / (yr[1] - yr[0] || 1)) * ph;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${M.left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<line x1="${M.left}" y1="${M.top + ph}" x2="${M.left + pw}" y2="${M.top + ph}" stroke="black"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}" stroke="black"/>`,
    `<text x="${M.left + pw / 2}" y="${H - 15}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  ];
  for (const t of xTicks ? niceTicks(xr[0], xr[1]) : []) {
    parts.push(`<line x1="${x(t)}" y1="${M.top + ph}" x2="${x(t)}" y2="${M.top + ph + 5}" stroke="black"/>`);
    parts.push(`<text x="${x(t)}" y="${M.top + ph + 18}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of niceTicks(yr[0], yr[1])) {
    parts.push(`<line x1="${M.left - 5}" y1="${y(t)}" x2="${M.left + pw}" y2="${y(t)}" stroke="#ddd"/>`);
    parts.push(`<text x="${M.left - 8}" y="${y(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  return { x, y, parts };
}

function legend(parts: string[], names: string[], colors: string[]): void {
  names.forEach((n, i) => {
    const ly = M.top + 10 + i * 18;
    parts.push(`<rect x="${W - M.right + 15}" y="${ly - 9}" width="12" height="12" fill="${colors[i]}"/>`);
    parts.push(`<text x="${W - M.right + 32}" y="${ly + 1}">${esc(n)}</text>`);
  });
}

function extent(vals: number[], zero = true): [number, number] {
  const finite = vals.filter(Number.isFinite);
  let lo = finite.length ? Math.min(...finite) : 0;
  let hi = finite.length ? Math.max(...finite) : 1;
  if (zero) lo = Math.min(0, lo);
  if (hi === lo) hi = lo + 1;
  hi += (hi - lo) * 0.05;
  return [lo, hi];
}

export interface ScatterPoint {
  x: number;
  y: number;
  group: string;
  label?: string;
}

export function scatterChart(title: string, xLabel: string, yLabel: string, pts: ScatterPoint[]): string {
  const f = frame(title, xLabel, yLabel, extent(pts.map((p) => p.x)), extent(pts.map((p) => p.y)));
  const groups = [...new Set(pts.map((p) => p.group))];
  const colors = groups.map((_, i) => PALETTE[i % PALETTE.length]!);
  for (const p of pts) {
    const c = colors[groups.indexOf(p.group)]!;
    f.parts.push(
      `<circle cx="${f.x(p.x).toFixed(1)}" cy="${f.y(p.y).toFixed(1)}" r="4.5" fill="${c}" fill-opacity="0.8">` +
        `<title>${esc(p.label ?? p.group)}</title></circle>`,
    );
  }
  legend(f.parts, groups, colors);
  f.parts.push("</svg>");
  return f.parts.join("\n");
}

export interface LineSeries {
  name: string;
  points: Array<[number, number]>;
}

export function lineChart(
  title: string,
  xLabel: string,
  yLabel: string,
  series: LineSeries[],
  hLine?: number,
): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).concat(hLine ?? []);
  const f = frame(title, xLabel, yLabel, extent(xs), extent(ys));
  const colors = series.map((_, i) => PALETTE[i % PALETTE.length]!);
  series.forEach((s, i) => {
    const d = s.points
      .map((p, k) => `${k ? "L" : "M"}${f.x(p[0]).toFixed(1)},${f.y(p[1]).toFixed(1)}`)
      .join("");
    f.parts.push(`<path d="${d}" fill="none" stroke="${colors[i]}" stroke-width="2"/>`);
  });
  if (hLine !== undefined) {
    f.parts.push(
      `<line x1="${f.x(Math.min(...xs))}" y1="${f.y(hLine)}" x2="${f.x(Math.max(...xs))}" y2="${f.y(hLine)}" stroke="#555" stroke-dasharray="5,4"/>`,
    );
  }
  legend(
    f.parts,
    series.map((s) => s.name),
    colors,
  );
  f.parts.push("</svg>");
  return f.parts.join("\n");
}

export interface StackedBar {
  label: string;
  parts: Record<string, number>;
}

export function stackedBarChart(title: string, yLabel: string, bars: StackedBar[]): string {
  const keys = [...new Set(bars.flatMap((b) => Object.keys(b.parts)))];
  const totals = bars.map((b) => keys.reduce((s, k) => s + (b.parts[k] ?? 0), 0));
  const f = frame(title, "", yLabel, [0, Math.max(1, bars.length)], extent(totals), false);
  const colors = keys.map((_, i) => PALETTE[i % PALETTE.length]!);
  const slot = f.x(1) - f.x(0);
  bars.forEach((b, i) => {
    let acc = 0;
    keys.forEach((k, j) => {
      const v = b.parts[k] ?? 0;
      if (v <= 0) return;
      const y0 = f.y(acc);
      const y1 = f.y(acc + v);
      f.parts.push(
        `<rect x="${(f.x(i) + slot * 0.15).toFixed(1)}" y="${y1.toFixed(1)}" width="${(slot * 0.7).toFixed(1)}" ` +
          `height="${(y0 - y1).toFixed(1)}" fill="${colors[j]}"><title>${esc(`${b.label}: ${k} ${fmt(v)}`)}</title></rect>`,
      );
      acc += v;
    });
    const cx = f.x(i) + slot / 2;
    f.parts.push(
      `<text transform="translate(${cx.toFixed(1)} ${H - M.bottom + 12}) rotate(20)" font-size="10">${esc(b.label)}</text>`,
    );
  });
  legend(f.parts, keys, colors);
  f.parts.push("</svg>");
  return f.parts.join("\n");
}
