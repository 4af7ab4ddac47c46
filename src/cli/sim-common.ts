import type { Command } from "commander";
import { type Catalog, loadCatalog } from "../sim/catalog.js";
import { DEFAULT_EFFICIENCY, type Efficiency } from "../sim/efficiency.js";
import { loadDeviceProfile, profileToDevice } from "../sim/profile.js";
import { type ArrivalMode, shapeTrace, type Trace } from "../sim/trace.js";
import { collect, floatAboveArg, intArg, named } from "./parse.js";
import { traceFromSpec } from "./sim-trace-spec.js";

/** Where the simulator commands print (stdout by default; tests capture it). */
export interface SimIo {
  out(text: string): void;
}

export const stdoutIo: SimIo = { out: (s) => void process.stdout.write(s) };

/** The workload flags `sim run` and `plan` share. */
export interface WorkloadFlags {
  model: string;
  trace: string;
  network: string;
  catalog?: string[];
  profile?: string;
  saturate?: boolean;
  rateScale: number;
  maxRequests?: number;
  decodeOnly?: boolean;
  json?: boolean;
  out?: string;
}

export function addWorkloadOptions(cmd: Command): Command {
  return cmd
    .requiredOption("--model <name|config.json>", "catalog model name or a Hugging Face config.json")
    .requiredOption(
      "--trace <trace>",
      "azure-conv | azure-code | kimi-conv | FILE (.csv Azure / .jsonl Mooncake) | synthetic:requests=N,rate=R,prompt=P,output=O,sigma=S,seed=K | sharegpt:N[@RATE]",
    )
    .option("--network <name>", "interconnect from catalogs/networks.json", "rdma-400g-fhbn")
    .option("--catalog <file>", "extra catalog JSON merged over the built-in ones (repeatable)", collect)
    .option(
      "--profile <file>",
      "device profile JSON: adds its device (named by the profile) measured on a real machine",
    )
    .option("--saturate", "all requests arrive at t=0 (measures capacity) instead of at their trace times")
    .option(
      "--rate-scale <x>",
      "multiply the trace's arrival rate by x",
      named("--rate-scale", floatAboveArg(0)),
      1,
    )
    .option("--max-requests <n>", "use only the first n requests", named("--max-requests", intArg(1)))
    .option("--decode-only", "prompts arrive already prefilled (Lamina's Table 5 setting)")
    .option("--json", "print JSON instead of a table")
    .option("--out <dir>", "write JSON results and SVG charts into this directory");
}

/** The catalog (with a measured device profile added), the shaped trace and the efficiency model. */
export function loadWorkload(o: WorkloadFlags): { catalog: Catalog; trace: Trace; eff: Efficiency } {
  let catalog = loadCatalog(o.catalog ?? []);
  let eff = DEFAULT_EFFICIENCY;
  if (o.profile) {
    const dev = profileToDevice(loadDeviceProfile(o.profile));
    catalog = {
      ...catalog,
      accelerators: [...catalog.accelerators, dev.acc],
      networks: [...catalog.networks, dev.network],
    };
    eff = dev.eff;
  }
  const mode: ArrivalMode = o.saturate ? { kind: "saturate" } : { kind: "trace", rateScale: o.rateScale };
  const trace = shapeTrace(traceFromSpec(o.trace), mode, o.maxRequests);
  return { catalog, trace, eff };
}

/** Runs an action, turning bad input (unknown names, unfit configurations, bad files) into a clean CLI error. */
export function guarded<T extends unknown[]>(cmd: () => Command, fn: (...args: T) => void) {
  return (...args: T) => {
    try {
      fn(...args);
    } catch (e) {
      if (e instanceof Error && !(e as { code?: string }).code?.startsWith("commander."))
        cmd().error(`error: ${e.message}`, { exitCode: 2 });
      throw e;
    }
  };
}
