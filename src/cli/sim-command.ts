import type { Command } from "commander";
import { findNetwork, resolveModel } from "../sim/catalog.js";
import { formatSimResult, tbtBreakdownSvg, writeJson, writeText } from "../sim/report.js";
import { simulate } from "../sim/simulate.js";
import { floatAboveArg, intArg, named } from "./parse.js";
import { addSimBandwidthCommand } from "./sim-bandwidth-command.js";
import { addSimCatalogCommand } from "./sim-catalog-command.js";
import {
  addWorkloadOptions,
  guarded,
  loadWorkload,
  type SimIo,
  stdoutIo,
  type WorkloadFlags,
} from "./sim-common.js";
import {
  addPlacementOptions,
  checkPlacementFlags,
  type PlacementFlags,
  placementFrom,
} from "./sim-placement-flags.js";

interface RunFlags extends WorkloadFlags, PlacementFlags {
  maxBatch: number;
  chunkTokens: number;
  kvHeadroom: number;
  tpotSloMs?: number;
  prefixCaching: boolean;
}

/** `lamina sim [run]`: simulate one configuration on a trace; `sim bandwidth` and `sim catalog` beside it. */
export function registerSimCommand(program: Command, io: SimIo = stdoutIo): Command {
  const sim = program
    .command("sim")
    .description("trace-driven simulation of LLM serving clusters (catalog devices, models, networks)");
  const run: Command = addPlacementOptions(
    addWorkloadOptions(
      sim.command("run", { isDefault: true }).description("simulate one configuration on a trace"),
    ),
  )
    .option("--max-batch <n>", "largest decode batch per instance", named("--max-batch", intArg(1)), 1024)
    .option(
      "--chunk-tokens <n>",
      "colocated chunked-prefill tokens per step",
      named("--chunk-tokens", intArg(1)),
      2048,
    )
    .option(
      "--kv-headroom <n>",
      "KV tokens per running request kept free at admission",
      named("--kv-headroom", intArg(0)),
      32,
    )
    .option(
      "--tpot-slo-ms <x>",
      "TPOT SLO used by Adrenaline's load-aware bound",
      named("--tpot-slo-ms", floatAboveArg(0)),
    )
    .option(
      "--no-prefix-caching",
      "model no prefix caching (by default decode instances that prefill their own prompts reuse cached prefix blocks where the trace records them: Mooncake's hash_ids)",
    )
    .action(
      guarded(
        () => run,
        (o: RunFlags) => simulateOne(run, o, io),
      ),
    );
  addSimBandwidthCommand(sim, io);
  addSimCatalogCommand(sim, io);
  return sim;
}

function simulateOne(run: Command, o: RunFlags, io: SimIo): void {
  checkPlacementFlags(run, o.placement);
  const { catalog, trace, eff } = loadWorkload(o);
  const r = simulate(trace, {
    model: resolveModel(catalog, o.model),
    placement: placementFrom(o),
    network: findNetwork(catalog, o.network),
    catalog,
    efficiency: eff,
    decodeOnly: o.decodeOnly ?? false,
    maxBatch: o.maxBatch,
    chunkTokens: o.chunkTokens,
    kvHeadroomTokens: o.kvHeadroom,
    tpotSlo: o.tpotSloMs === undefined ? undefined : o.tpotSloMs / 1e3,
    prefixCaching: o.prefixCaching,
  });
  io.out(o.json ? JSON.stringify(r, null, 2) + "\n" : formatSimResult(r));
  if (o.out) {
    writeJson(o.out, "sim.json", r);
    writeText(o.out, "sim-tbt.svg", tbtBreakdownSvg(`TBT breakdown: ${r.label}`, [r]));
    if (!o.json) io.out(`wrote ${o.out}/sim.json, sim-tbt.svg\n`);
  }
}
