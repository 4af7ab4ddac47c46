import { type Command, Option } from "commander";
import { type BandwidthPoint, bandwidthCurve } from "../sim/bandwidth.js";
import { findAccelerator, loadCatalog, resolveModel } from "../sim/catalog.js";
import { DEFAULT_EFFICIENCY } from "../sim/efficiency.js";
import { bandwidthSvg, formatTable, writeJson, writeText } from "../sim/report.js";
import type { Accelerator, SimModel } from "../sim/types.js";
import { collect, floatAboveArg, intArg, listOf, named } from "./parse.js";
import { guarded, type SimIo } from "./sim-common.js";

interface BandwidthFlags {
  model: string;
  modelDevice: string;
  modelTp: number;
  attentionDevice: string;
  attentionDevices: number;
  context: number[];
  alpha: number;
  maxBatch: number;
  catalog?: string[];
  json?: boolean;
  out?: string;
}

/** `lamina sim bandwidth`: Lamina's minimum model↔attention bandwidth against the batch (Fig. 4). */
export function addSimBandwidthCommand(sim: Command, io: SimIo): Command {
  const bw: Command = sim
    .command("bandwidth")
    .description("Lamina's minimum model↔attention bandwidth vs batch (Fig. 4)")
    .requiredOption("--model <name|config.json>", "catalog model name or a Hugging Face config.json")
    .option("--model-device <name>", "model-worker accelerator", "H100")
    .option(
      "--model-tp <n>",
      "model devices per replica (0 = smallest that fits)",
      named("--model-tp", intArg(0)),
      0,
    )
    .option("--attention-device <name>", "attention-worker accelerator", "H20")
    .option("--attention-devices <n>", "attention devices", named("--attention-devices", intArg(1)), 2)
    .addOption(
      new Option("--context <tokens>", "context length per request (comma list for several curves)")
        .argParser(named("--context", listOf(intArg(1))))
        .default([1024, 4096], "1024,4096"),
    )
    .option(
      "--alpha <x>",
      "share of step time allowed for networking",
      named("--alpha", floatAboveArg(0, 1)),
      0.2,
    )
    .option("--max-batch <n>", "largest batch on the curve", named("--max-batch", intArg(1)), 1024)
    .option("--catalog <file>", "extra catalog JSON (repeatable)", collect)
    .option("--json", "print JSON")
    .option("--out <dir>", "write bandwidth.json and bandwidth.svg here")
    .action(
      guarded(
        () => bw,
        (o: BandwidthFlags) => bandwidthReport(o, io),
      ),
    );
  return bw;
}

/** The smallest power-of-two tensor parallelism whose devices hold the weights (at most 128). */
function fittingTp(m: SimModel, acc: Accelerator): number {
  let tp = 1;
  while (tp <= 64 && m.weightBytes >= tp * (acc.memoryBytes * 0.9 - 2e9)) tp *= 2;
  return tp;
}

function bandwidthReport(o: BandwidthFlags, io: SimIo): void {
  const catalog = loadCatalog(o.catalog ?? []);
  const m = resolveModel(catalog, o.model);
  const ma = findAccelerator(catalog, o.modelDevice);
  const aa = findAccelerator(catalog, o.attentionDevice);
  const tp = o.modelTp === 0 ? fittingTp(m, ma) : o.modelTp;
  const batches: number[] = [];
  for (let b = 1; b <= o.maxBatch; b = b < 16 ? b * 2 : b + 16) batches.push(b);
  const series = o.context.map((ctx) => ({
    name: `context ${ctx}`,
    points: bandwidthCurve(m, ma, tp, aa, o.attentionDevices, ctx, o.alpha, batches, DEFAULT_EFFICIENCY),
  }));
  const meta = {
    model: m.name,
    modelDevice: ma.name,
    modelTp: tp,
    attentionDevice: aa.name,
    attentionDevices: o.attentionDevices,
    alpha: o.alpha,
  };
  if (o.json) io.out(JSON.stringify({ ...meta, series }, null, 2) + "\n");
  else {
    io.out(
      `${m.name}: ${tp}×${ma.name} model, ${o.attentionDevices}×${aa.name} attention, α = ${o.alpha} (GB/s)\n`,
    );
    io.out(bandwidthTable(batches, series));
  }
  if (o.out) {
    writeJson(o.out, "bandwidth.json", { ...meta, series });
    writeText(
      o.out,
      "bandwidth.svg",
      bandwidthSvg(`Minimum bandwidth, ${m.name} on ${ma.name}+${aa.name}, α=${o.alpha}`, series, 30),
    );
  }
}

/** GB/s per curve at a readable subset of the batches. */
function bandwidthTable(batches: number[], series: { name: string; points: BandwidthPoint[] }[]): string {
  const rows = batches
    .filter((b) => b === 1 || b % 64 === 0 || b === 300)
    .map((b) => [
      String(b),
      ...series.map((s) => ((s.points.find((p) => p.batch === b)?.bandwidth ?? Number.NaN) / 1e9).toFixed(1)),
    ]);
  return formatTable(["batch", ...series.map((s) => s.name)], rows);
}
