import { type Catalog, findAccelerator } from "./catalog.js";
import { weightsFit } from "./cost-model.js";
import { DEFAULT_EFFICIENCY, type Efficiency } from "./efficiency.js";
import { ConfigError, StepCost, type StepInput } from "./instances.js";
import { type Placement, type PlacementKind, placementDevices } from "./placement.js";
import { buildSetup, type SimOptions } from "./setup.js";
import { type SimResult, simulate } from "./simulate.js";
import { type Trace, traceStats } from "./trace.js";
import type { Accelerator, Network, SimModel } from "./types.js";

/** Which TBT statistic the SLO applies to. */
export type SloStatistic = "mean" | "p50" | "p99";

export interface PlanRequest {
  readonly model: SimModel;
  /** Already shaped (arrival mode, request cut). */
  readonly trace: Trace;
  readonly sloTbtMs: number;
  readonly sloStatistic?: SloStatistic;
  readonly budgetPerHour?: number;
  /** Accelerator names to consider (default: every GPU-class entry of the catalog). */
  readonly devices?: readonly string[];
  readonly kinds?: readonly PlacementKind[];
  readonly network: Network;
  readonly catalog: Catalog;
  readonly efficiency?: Efficiency;
  /** Compare decode capacity only (prompts arrive prefilled), as in Lamina's Table 5; PD/Adrenaline are skipped. */
  readonly decodeOnly?: boolean;
  /** Upper bound on simulated configurations (default 100). */
  readonly maxConfigs?: number;
  readonly chunkTokens?: number;
  /**
   * How the trace was shaped: "saturate" ranks by the throughput while requests were waiting (capacity),
   * "trace" by the whole run's throughput (default "saturate").
   */
  readonly load?: "saturate" | "trace";
}

export interface PlanEntry {
  result: SimResult;
  /** The throughput ranked on (see PlanRequest.load), tok/s, and per dollar. */
  throughputTokS: number;
  tokensPerDollar: number;
  meetsSlo: boolean;
  /** Batch cap chosen so that a full step stays within the SLO. */
  sloBatch: number;
}

export interface PlanOutcome {
  ranked: PlanEntry[];
  infeasible: Array<{ label: string; reason: string }>;
  winner: PlanEntry | null;
  explanation: string;
  simulated: number;
  wallMs: number;
}

const DEFAULT_DEVICES = ["H100", "H20", "A100-80GB", "H200", "L40S"];

/** Smallest power-of-two group (≤ 8) of `acc` that holds the weights, or 0. */
function minTp(m: SimModel, acc: Accelerator, eff: Efficiency): number {
  for (let tp = 1; tp <= 8; tp *= 2) if (weightsFit(m, acc, tp, eff)) return tp;
  return 0;
}

/** Candidate placements, cheapest first within each kind, interleaved so a cap keeps every kind. */
export function enumeratePlacements(req: PlanRequest): Placement[] {
  const eff = req.efficiency ?? DEFAULT_EFFICIENCY;
  const names = req.devices ?? DEFAULT_DEVICES;
  const devs = names.map((n) => findAccelerator(req.catalog, n));
  const kinds = new Set<PlacementKind>(req.kinds ?? ["homogeneous", "lamina", "pd", "adrenaline"]);
  if (req.decodeOnly) {
    kinds.delete("pd");
    kinds.delete("adrenaline");
  }
  const m = req.model;
  const byKind: Record<PlacementKind, Placement[]> = { homogeneous: [], lamina: [], pd: [], adrenaline: [] };
  for (const d of devs) {
    const tp0 = minTp(m, d, eff);
    if (tp0 === 0) continue;
    for (const tp of [tp0, tp0 * 2]) {
      if (tp > 8) continue;
      for (const replicas of [1, 2])
        byKind.homogeneous.push({ kind: "homogeneous", device: d.name, tp, replicas });
    }
  }
  // Lamina: compute-rich model devices, any attention device; a = one or two replicas' worth.
  for (const md of devs) {
    const tp0 = minTp(m, md, eff);
    if (tp0 === 0) continue;
    for (const ad of devs) {
      if (ad.memoryBandwidth / ad.flops < md.memoryBandwidth / md.flops) continue;
      for (const a of [tp0, 2 * tp0]) {
        for (const b of [1, 2, 4, 8]) {
          if (b < tp0 / 2) continue;
          byKind.lamina.push({
            kind: "lamina",
            modelDevice: md.name,
            attentionDevice: ad.name,
            a,
            b,
            microBatches: 0,
          });
        }
      }
    }
  }
  for (const pd of devs) {
    const ptp = minTp(m, pd, eff);
    if (ptp === 0) continue;
    for (const dd of devs) {
      const dtp = minTp(m, dd, eff);
      if (dtp === 0) continue;
      for (const [pi, di] of [
        [1, 1],
        [1, 2],
      ] as const) {
        const base = {
          prefillDevice: pd.name,
          prefillTp: ptp,
          prefillInstances: pi,
          decodeDevice: dd.name,
          decodeTp: dtp,
          decodeInstances: di,
        };
        byKind.pd.push({ kind: "pd", ...base });
        byKind.adrenaline.push({ kind: "adrenaline", ...base, offloadRatio: "auto", prefillShare: 0.7 });
      }
    }
  }
  const price = (p: Placement) =>
    placementDevices(p).reduce(
      (s, x) => s + findAccelerator(req.catalog, x.device).pricePerHour * x.count,
      0,
    );
  const lists = [...kinds].map((k) =>
    byKind[k]
      .filter((p) => req.budgetPerHour === undefined || price(p) <= req.budgetPerHour)
      .sort((x, y) => price(x) - price(y)),
  );
  const out: Placement[] = [];
  const cap = req.maxConfigs ?? 100;
  for (let i = 0; out.length < cap; i++) {
    let any = false;
    for (const l of lists) {
      if (i < l.length && out.length < cap) {
        out.push(l[i]!);
        any = true;
      }
    }
    if (!any) break;
  }
  return out;
}

/**
 * Largest batch whose full step (batch at the trace's mean context, plus one prefill chunk when
 * prefill is colocated) fits in the SLO: what an SLO-aware scheduler would cap the batch at.
 */
export function sloBatchCap(
  opts: SimOptions,
  meanContext: number,
  sloS: number,
  chunkTokens: number,
): number {
  const setup = buildSetup({ ...opts, maxBatch: 1 }, meanContext);
  const inst = setup.instances[0]!;
  const colocated = setup.prefillServers.length === 0 && !setup.decodeOnly;
  const cost = new StepCost();
  const input: StepInput = {
    bLocal: 0,
    ctxLocal: 0,
    bRemote: 0,
    ctxRemote: 0,
    prefillTokens: 0,
    prefillWork: 0,
  };
  const stepAt = (b: number) => {
    const remote = Math.floor(b * inst.offloadRatio);
    input.bLocal = b - remote;
    input.bRemote = remote;
    input.ctxLocal = input.bLocal * meanContext;
    input.ctxRemote = remote * meanContext;
    input.prefillTokens = colocated ? chunkTokens : 0;
    input.prefillWork = colocated ? 2 * chunkTokens * (meanContext / 2) : 0;
    inst.step(input, cost);
    return cost.time;
  };
  if (stepAt(1) > sloS) return 0;
  let lo = 1;
  let hi = 1;
  while (hi < 8192 && stepAt(hi * 2) <= sloS) hi *= 2;
  hi = Math.min(8192, hi * 2);
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (stepAt(mid) <= sloS) lo = mid;
    else hi = mid;
  }
  return lo;
}

function statistic(r: SimResult, s: SloStatistic): number {
  return s === "mean" ? r.tbtMs.mean : s === "p50" ? r.tbtMs.p50 : r.tbtMs.p99;
}

export function plan(req: PlanRequest): PlanOutcome {
  const t0 = performance.now();
  if (!(req.sloTbtMs > 0)) throw new ConfigError(`--slo-tbt-ms must be > 0 (got ${req.sloTbtMs})`);
  const stat = req.sloStatistic ?? "p99";
  const ts = traceStats(req.trace);
  const meanContext = ts.meanPrompt + ts.meanOutput / 2;
  const chunkTokens = req.chunkTokens ?? 512;
  const ranked: PlanEntry[] = [];
  const infeasible: Array<{ label: string; reason: string }> = [];
  const placements = enumeratePlacements(req);
  for (const placement of placements) {
    const opts: SimOptions = {
      model: req.model,
      placement,
      network: req.network,
      catalog: req.catalog,
      efficiency: req.efficiency,
      decodeOnly: req.decodeOnly ?? false,
      chunkTokens,
      tpotSlo: req.sloTbtMs / 1e3,
      meanContext,
    };
    let result: SimResult;
    let sloBatch = 0;
    try {
      sloBatch = sloBatchCap(opts, meanContext, req.sloTbtMs / 1e3, chunkTokens);
      if (sloBatch === 0) {
        infeasible.push({
          label: simulateLabel(placement),
          reason: `a batch of 1 already exceeds ${req.sloTbtMs} ms`,
        });
        continue;
      }
      result = simulate(req.trace, { ...opts, maxBatch: sloBatch });
    } catch (e) {
      if (e instanceof ConfigError) {
        infeasible.push({ label: simulateLabel(placement), reason: e.message });
        continue;
      }
      throw e;
    }
    const throughputTokS =
      (req.load ?? "saturate") === "saturate" ? result.saturatedThroughputTokS : result.throughputTokS;
    ranked.push({
      result,
      sloBatch,
      meetsSlo: statistic(result, stat) <= req.sloTbtMs,
      throughputTokS,
      tokensPerDollar: (throughputTokS * 3600) / result.pricePerHour,
    });
  }
  ranked.sort((a, b) => Number(b.meetsSlo) - Number(a.meetsSlo) || b.tokensPerDollar - a.tokensPerDollar);
  const winner = ranked.find((e) => e.meetsSlo) ?? null;
  return {
    ranked,
    infeasible,
    winner,
    explanation: explainWinner(winner, ranked, stat, req.sloTbtMs),
    simulated: ranked.length,
    wallMs: performance.now() - t0,
  };
}

function simulateLabel(p: Placement): string {
  return placementDevices(p)
    .map((d) => `${d.count}×${d.device}`)
    .join("+")
    .concat(` ${p.kind}`);
}

function explainWinner(w: PlanEntry | null, ranked: PlanEntry[], stat: SloStatistic, slo: number): string {
  if (!w) return `no configuration meets TBT ${stat} ≤ ${slo} ms`;
  const r = w.result;
  const lines = [
    `${r.label}: ${w.throughputTokS.toFixed(0)} tok/s for $${r.pricePerHour.toFixed(2)}/h = ` +
      `${(w.tokensPerDollar / 1e3).toFixed(1)}k tokens per dollar at TBT ${stat} ${statistic(r, stat).toFixed(1)} ms (SLO ${slo} ms).`,
    `Limited by: ${r.bottleneck}. Average batch ${r.saturatedAvgBatch.toFixed(0)} (SLO cap ${w.sloBatch}), ` +
      `KV ${(r.avgKvUtil * 100).toFixed(0)}% full, model-side MFU ${(r.utilization.modelCompute * 100).toFixed(0)}%, ` +
      `attention bandwidth ${(r.utilization.attentionBandwidth * 100).toFixed(0)}%.`,
  ];
  const bestOther = (kind: PlacementKind) =>
    ranked.find((e) => e.meetsSlo && e.result.placement.kind === kind && e !== w);
  for (const k of ["homogeneous", "lamina", "pd", "adrenaline"] as const) {
    const o = bestOther(k);
    if (o && o.result.placement.kind !== r.placement.kind) {
      lines.push(
        `vs best ${k} (${o.result.label}): ${(w.tokensPerDollar / o.tokensPerDollar).toFixed(2)}× tokens per dollar.`,
      );
    }
  }
  return lines.join("\n");
}
