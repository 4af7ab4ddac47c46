import type { Command } from "commander";
import { type Catalog, loadCatalog } from "../sim/catalog.js";
import { formatTable } from "../sim/report.js";
import { collect } from "./parse.js";
import type { SimIo } from "./sim-common.js";

/** `lamina sim catalog`: the accelerators, models and networks the simulator knows. */
export function addSimCatalogCommand(sim: Command, io: SimIo): Command {
  return sim
    .command("catalog")
    .description("list the accelerators, models and networks the simulator knows")
    .option("--catalog <file>", "extra catalog JSON (repeatable)", collect)
    .action((o: { catalog?: string[] }) => io.out(formatCatalog(loadCatalog(o.catalog ?? []))));
}

function formatCatalog(c: Catalog): string {
  const accelerators = formatTable(
    ["accelerator", "TFLOP/s", "GB", "TB/s", "NIC GB/s", "$/h"],
    c.accelerators.map((a) => [
      a.name,
      (a.flops / 1e12).toFixed(0),
      (a.memoryBytes / 1e9).toFixed(0),
      (a.memoryBandwidth / 1e12).toFixed(2),
      (a.nicBandwidth / 1e9).toFixed(1),
      a.pricePerHour.toFixed(2),
    ]),
  );
  const models = formatTable(
    ["model", "params", "weights GB", "L", "d", "heads", "kv heads"],
    c.models.map((m) => [
      m.name,
      (m.params / 1e9).toFixed(1) + "B",
      (m.weightBytes / 1e9).toFixed(1),
      String(m.layers),
      String(m.hidden),
      String(m.heads),
      String(m.kvHeads),
    ]),
  );
  const networks = formatTable(
    ["network", "GB/s", "latency us"],
    c.networks.map((n) => [n.name, (n.bandwidth / 1e9).toFixed(1), (n.latency * 1e6).toFixed(1)]),
  );
  return `${accelerators}\n${models}\n${networks}`;
}
