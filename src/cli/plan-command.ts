import type { Command } from "commander";
import { findNetwork, resolveModel } from "../sim/catalog.js";
import type { PlacementKind } from "../sim/placement.js";
import { plan, type SloStatistic } from "../sim/planner.js";
import { formatPlan, writePlanFiles } from "../sim/report.js";
import { choiceArg, floatAboveArg, intArg, listArg, listOf, named } from "./parse.js";
import {
  addWorkloadOptions,
  guarded,
  loadWorkload,
  type SimIo,
  stdoutIo,
  type WorkloadFlags,
} from "./sim-common.js";
import { PLACEMENT_KINDS } from "./sim-placement-flags.js";

interface PlanFlags extends WorkloadFlags {
  sloTbtMs: number;
  sloStat: SloStatistic;
  budget?: number;
  devices?: string[];
  kinds?: PlacementKind[];
  load: "saturate" | "trace";
  maxConfigs: number;
}

/** `lamina plan`: rank configurations by throughput per dollar under a TBT SLO, with the simulator. */
export function registerPlanCommand(program: Command, io: SimIo = stdoutIo): Command {
  const planCmd: Command = addWorkloadOptions(
    program
      .command("plan")
      .description(
        "rank homogeneous, Lamina, PD and Adrenaline configurations by throughput per dollar under a TBT SLO",
      ),
  )
    .requiredOption(
      "--slo-tbt-ms <x>",
      "time-between-tokens SLO in ms",
      named("--slo-tbt-ms", floatAboveArg(0)),
    )
    .option(
      "--slo-stat <stat>",
      "TBT statistic the SLO bounds: mean, p50, p99",
      named("--slo-stat", choiceArg(["mean", "p50", "p99"] as const)),
      "p99",
    )
    .option("--budget <usd>", "largest cluster price in $/h", named("--budget", floatAboveArg(0)))
    .option(
      "--devices <list>",
      "accelerators to consider (comma list; default H100,H20,A100-80GB,H200,L40S)",
      listArg,
    )
    .option(
      "--kinds <list>",
      `placements to consider (comma list of ${PLACEMENT_KINDS.join(", ")})`,
      named("--kinds", listOf(choiceArg(PLACEMENT_KINDS))),
    )
    .option(
      "--load <mode>",
      "saturate (capacity, default) or trace (arrivals at trace times)",
      named("--load", choiceArg(["saturate", "trace"] as const)),
      "saturate",
    )
    .option("--max-configs <n>", "simulate at most n configurations", named("--max-configs", intArg(1)), 100)
    .action(
      guarded(
        () => planCmd,
        (o: PlanFlags) => planAndReport(o, io),
      ),
    );
  return planCmd;
}

function planAndReport(o: PlanFlags, io: SimIo): void {
  const { catalog, trace, eff } = loadWorkload({ ...o, saturate: o.saturate || o.load === "saturate" });
  const model = resolveModel(catalog, o.model);
  const outcome = plan({
    model,
    trace,
    sloTbtMs: o.sloTbtMs,
    sloStatistic: o.sloStat,
    budgetPerHour: o.budget,
    devices: o.devices,
    kinds: o.kinds,
    network: findNetwork(catalog, o.network),
    catalog,
    efficiency: eff,
    decodeOnly: o.decodeOnly ?? false,
    maxConfigs: o.maxConfigs,
    load: o.load,
  });
  const meta = {
    model: model.name,
    trace: trace.name,
    sloTbtMs: o.sloTbtMs,
    sloStat: o.sloStat,
    budget: o.budget ?? null,
    load: o.load,
  };
  if (o.json) io.out(JSON.stringify({ ...meta, ...outcome }, null, 2) + "\n");
  else io.out(formatPlan(outcome));
  if (o.out) {
    const files = writePlanFiles(o.out, outcome, meta);
    if (!o.json) io.out(`wrote ${files.join(", ")}\n`);
  }
  if (!outcome.winner) process.exitCode = 3;
}
