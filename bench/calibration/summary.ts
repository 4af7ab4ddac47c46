import { median } from "../../src/bench/stats.js";
import type { Measured, PlacementName } from "./placements.js";

export interface RoundRow {
  readonly round: number;
  readonly placement: PlacementName;
  readonly loadAverage: number;
  readonly measured: Measured;
  readonly predicted: Measured;
}

const err = (p: number, m: number) => (100 * (p - m)) / m;
const pct = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(1)}%`;

/** Medians over rounds of one metric, measured and predicted, and the error of the medians. */
function compare(rs: readonly RoundRow[], get: (m: Measured) => number | undefined) {
  const ms = rs.map((r) => get(r.measured)).filter((x): x is number => x !== undefined);
  const ps = rs.map((r) => get(r.predicted)).filter((x): x is number => x !== undefined);
  if (ms.length === 0 || ps.length === 0) return null;
  const measured = median(ms);
  const predicted = median(ps);
  return { measured, predicted, errorPct: err(predicted, measured) };
}

/**
 * Prints predicted against measured for every placement (medians of the rounds) with the issue's
 * targets: throughput ±15%, the Adrenaline/PD ratio ±15%, PD and Adrenaline TTFT and TPOT ±25%.
 */
export function printCalibration(rows: readonly RoundRow[], placements: readonly PlacementName[]) {
  console.log(
    "\n| placement | measured tok/s | predicted tok/s | error | per round | TTFT s meas / pred (error) | TPOT ms meas / pred (error) | preemptions meas / pred |",
  );
  console.log(`|${" --- |".repeat(8)}`);
  const out: Record<string, unknown> = {};
  for (const name of placements) {
    const rs = rows.filter((r) => r.placement === name);
    const tok = compare(rs, (m) => m.tokS)!;
    const ttft = compare(rs, (m) => m.ttftS);
    const tpot = compare(rs, (m) => m.tpotS);
    const pre = compare(rs, (m) => m.preemptions);
    const perRound = rs.map((r) => pct(err(r.predicted.tokS, r.measured.tokS))).join(", ");
    console.log(
      `| ${name} | ${tok.measured.toFixed(1)} | ${tok.predicted.toFixed(1)} | **${pct(tok.errorPct)}** | ${perRound} | ` +
        `${ttft ? `${ttft.measured.toFixed(2)} / ${ttft.predicted.toFixed(2)} (${pct(ttft.errorPct)})` : "–"} | ` +
        `${tpot ? `${(tpot.measured * 1e3).toFixed(1)} / ${(tpot.predicted * 1e3).toFixed(1)} (${pct(tpot.errorPct)})` : "–"} | ` +
        `${pre ? `${pre.measured} / ${pre.predicted}` : "–"} |`,
    );
    out[name] = {
      throughput: { ...tok, withinTarget: Math.abs(tok.errorPct) <= 15 },
      ttft: ttft && { ...ttft, withinTarget: Math.abs(ttft.errorPct) <= 25 },
      tpot: tpot && { ...tpot, withinTarget: Math.abs(tpot.errorPct) <= 25 },
      preemptions: pre,
    };
  }
  const checked = placements.filter((n) => rows.some((r) => r.placement === n && r.predicted.stepCheck));
  if (checked.length > 0) {
    console.log(
      "\nper-step check (each measured pure-decode step against the prediction of that step; medians of rounds):",
    );
    console.log(
      "| placement | median step measured / predicted | whole run measured / predicted | lost to stalls |",
    );
    console.log(`|${" --- |".repeat(4)}`);
    for (const name of checked) {
      const cs = rows.filter((r) => r.placement === name).map((r) => r.predicted.stepCheck!);
      const med = median(cs.map((c) => c.medianRatio));
      const tot = median(cs.map((c) => c.totalRatio));
      console.log(`| ${name} | ${med.toFixed(3)} | ${tot.toFixed(3)} | ${pct(100 * (tot / med - 1))} |`);
      out[`${name}StepCheck`] = { medianRatio: med, totalRatio: tot };
    }
  }
  if (placements.includes("pd") && placements.includes("adrenaline")) {
    const ratios = (which: "measured" | "predicted") =>
      [...new Set(rows.map((r) => r.round))].map((round) => {
        const get = (p: PlacementName) =>
          rows.find((r) => r.round === round && r.placement === p)![which].tokS;
        return get("adrenaline") / get("pd");
      });
    const m = median(ratios("measured"));
    const p = median(ratios("predicted"));
    console.log(
      `\nAdrenaline / PD throughput: measured ${m.toFixed(2)}×, predicted ${p.toFixed(2)}× (${pct(err(p, m))}; per round measured ${ratios(
        "measured",
      )
        .map((x) => x.toFixed(2))
        .join(", ")}, predicted ${ratios("predicted")
        .map((x) => x.toFixed(2))
        .join(", ")})`,
    );
    out.adrenalineOverPd = {
      measured: m,
      predicted: p,
      errorPct: err(p, m),
      withinTarget: Math.abs(err(p, m)) <= 15,
    };
  }
  console.log("(targets: throughput ±15%, Adrenaline/PD ratio ±15%, PD and Adrenaline TTFT and TPOT ±25%)");
  return out;
}
