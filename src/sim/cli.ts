import { type Command, InvalidArgumentError } from "commander";
import { bandwidthCurve } from "./bandwidth.js";
import { type Catalog, findAccelerator, findNetwork, loadCatalog, resolveModel } from "./catalog.js";
import { DEFAULT_EFFICIENCY, type Efficiency } from "./efficiency.js";
import { ConfigError } from "./instances.js";
import type { Placement, PlacementKind } from "./placement.js";
import { plan, type SloStatistic } from "./planner.js";
import { loadDeviceProfile, profileToDevice } from "./profile.js";
import {
  bandwidthSvg,
  formatPlan,
  formatSimResult,
  formatTable,
  tbtBreakdownSvg,
  writeJson,
  writePlanFiles,
  writeText,
} from "./report.js";
import { simulate } from "./simulate.js";
import {
  type ArrivalMode,
  loadTrace,
  shapeTrace,
  shareGptLike,
  syntheticTrace,
  type Trace,
} from "./trace.js";

/** Where command output goes (stdout by default; tests capture it). */
export interface SimIo {
  out(text: string): void;
}

const stdoutIo: SimIo = { out: (s) => void process.stdout.write(s) };

// ---- option parsers: each names the flag in its error ----

function int(flag: string, min = 1) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${flag} must be an integer ≥ ${min} (got "${v}")`);
    return n;
  };
}

function num(flag: string, { min = 0, exclusive = true, max = Number.POSITIVE_INFINITY } = {}) {
  return (v: string): number => {
    const n = Number(v);
    const ok = Number.isFinite(n) && (exclusive ? n > min : n >= min) && n <= max;
    if (!ok)
      throw new InvalidArgumentError(
        `${flag} must be a number ${exclusive ? ">" : "≥"} ${min}${max < Infinity ? ` and ≤ ${max}` : ""} (got "${v}")`,
      );
    return n;
  };
}

function oneOf<T extends string>(flag: string, values: readonly T[]) {
  return (v: string): T => {
    if (!values.includes(v as T))
      throw new InvalidArgumentError(`${flag} must be one of ${values.join(", ")} (got "${v}")`);
    return v as T;
  };
}

const list = (v: string): string[] =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

const collect = (v: string, prev: string[] = []) => [...prev, v];

function offload(v: string): number | "auto" {
  if (v === "auto") return "auto";
  const n = Number(v);
  if (!(n >= 0 && n < 1))
    throw new InvalidArgumentError(`--offload must be "auto" or a ratio in [0, 1) (got "${v}")`);
  return n;
}

/** A trace spec: azure-conv | azure-code | kimi-conv | FILE | synthetic:k=v,… | sharegpt:N[@rate]. */
export function traceFromSpec(spec: string): Trace {
  if (spec.startsWith("sharegpt:")) {
    const m = /^sharegpt:(\d+)(?:@([\d.]+|inf))?$/.exec(spec);
    if (!m) throw new ConfigError(`--trace ${spec}: expected sharegpt:N or sharegpt:N@RATE`);
    return shareGptLike(
      Number(m[1]),
      m[2] === undefined || m[2] === "inf" ? Number.POSITIVE_INFINITY : Number(m[2]),
    );
  }
  if (spec.startsWith("synthetic:")) {
    const kv = Object.fromEntries(
      spec
        .slice("synthetic:".length)
        .split(",")
        .filter(Boolean)
        .map((p) => p.split("=")),
    ) as Record<string, string>;
    const known = ["requests", "rate", "prompt", "output", "sigma", "seed"];
    for (const k of Object.keys(kv)) {
      if (!known.includes(k))
        throw new ConfigError(`--trace synthetic: unknown key "${k}" (known: ${known.join(", ")})`);
    }
    const n = (k: string, d: number) => {
      const v = kv[k] === undefined ? d : kv[k] === "inf" ? Number.POSITIVE_INFINITY : Number(kv[k]);
      if (Number.isNaN(v)) throw new ConfigError(`--trace synthetic: ${k} must be a number (got "${kv[k]}")`);
      return v;
    };
    return syntheticTrace({
      requests: n("requests", 1000),
      rate: n("rate", 5),
      meanPrompt: n("prompt", 512),
      meanOutput: n("output", 256),
      sigma: n("sigma", 0.8),
      seed: n("seed", 1),
    });
  }
  return loadTrace(spec);
}

interface CommonOpts {
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

function common(cmd: Command): Command {
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
    .option("--rate-scale <x>", "multiply the trace's arrival rate by x", num("--rate-scale"), 1)
    .option("--max-requests <n>", "use only the first n requests", int("--max-requests"))
    .option("--decode-only", "prompts arrive already prefilled (Lamina's Table 5 setting)")
    .option("--json", "print JSON instead of a table")
    .option("--out <dir>", "write JSON results and SVG charts into this directory");
}

function setupCommon(o: CommonOpts): { catalog: Catalog; trace: Trace; eff: Efficiency } {
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
function guarded<T extends unknown[]>(cmd: () => Command, fn: (...args: T) => void) {
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

interface RunOpts extends CommonOpts {
  placement: PlacementKind;
  device: string;
  tp: number;
  replicas: number;
  modelDevice: string;
  attentionDevice: string;
  a: number;
  b: number;
  microBatches: number;
  prefillDevice: string;
  prefillTp: number;
  prefillInstances: number;
  decodeDevice: string;
  decodeTp: number;
  decodeInstances: number;
  offload: number | "auto";
  prefillShare: number;
  maxBatch: number;
  chunkTokens: number;
  kvHeadroom: number;
  tpotSloMs?: number;
}

function placementFrom(o: RunOpts): Placement {
  switch (o.placement) {
    case "homogeneous":
      return { kind: "homogeneous", device: o.device, tp: o.tp, replicas: o.replicas };
    case "lamina":
      return {
        kind: "lamina",
        modelDevice: o.modelDevice,
        attentionDevice: o.attentionDevice,
        a: o.a,
        b: o.b,
        microBatches: o.microBatches,
      };
    case "pd":
    case "adrenaline": {
      const base = {
        prefillDevice: o.prefillDevice,
        prefillTp: o.prefillTp,
        prefillInstances: o.prefillInstances,
        decodeDevice: o.decodeDevice,
        decodeTp: o.decodeTp,
        decodeInstances: o.decodeInstances,
      };
      return o.placement === "pd"
        ? { kind: "pd", ...base }
        : { kind: "adrenaline", ...base, offloadRatio: o.offload, prefillShare: o.prefillShare };
    }
  }
}

const KINDS: readonly PlacementKind[] = ["homogeneous", "lamina", "pd", "adrenaline"];

const PD_FLAGS = [
  "prefillDevice",
  "prefillTp",
  "prefillInstances",
  "decodeDevice",
  "decodeTp",
  "decodeInstances",
];
/** Which placement flags (commander attribute names) apply to which placement. */
const PLACEMENT_FLAGS: Record<PlacementKind, readonly string[]> = {
  homogeneous: ["device", "tp", "replicas"],
  lamina: ["modelDevice", "attentionDevice", "a", "b", "microBatches"],
  pd: PD_FLAGS,
  adrenaline: [...PD_FLAGS, "offload", "prefillShare", "tpotSloMs"],
};

/** A placement flag given on the command line for another placement is a mistake: say so. */
function checkPlacementFlags(cmd: Command, kind: PlacementKind): void {
  const allowed = new Set(PLACEMENT_FLAGS[kind]);
  for (const [k, flags] of Object.entries(PLACEMENT_FLAGS)) {
    for (const f of flags) {
      if (!allowed.has(f) && cmd.getOptionValueSource(f) === "cli") {
        const flag = `--${f.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
        throw new ConfigError(`${flag} applies to --placement ${k}, not ${kind}`);
      }
    }
  }
}

export function registerSimCommands(program: Command, io: SimIo = stdoutIo): void {
  const sim = program
    .command("sim")
    .description("trace-driven simulation of LLM serving clusters (catalog devices, models, networks)");

  const run: Command = common(
    sim.command("run", { isDefault: true }).description("simulate one configuration on a trace"),
  )
    .option("--placement <kind>", `one of ${KINDS.join(", ")}`, oneOf("--placement", KINDS), "homogeneous")
    .option("--device <name>", "homogeneous: accelerator", "H100")
    .option("--tp <n>", "homogeneous: tensor parallelism per instance", int("--tp"), 1)
    .option("--replicas <n>", "homogeneous: instances", int("--replicas"), 1)
    .option("--model-device <name>", "lamina: model-worker accelerator", "H100")
    .option("--attention-device <name>", "lamina: attention-worker accelerator", "H20")
    .option("--a <n>", "lamina: model devices", int("--a"), 1)
    .option("--b <n>", "lamina: attention devices", int("--b"), 1)
    .option(
      "--micro-batches <n>",
      "lamina: concurrent micro-batches n (0 = auto: 2, or replicas + 1)",
      int("--micro-batches", 0),
      0,
    )
    .option("--prefill-device <name>", "pd/adrenaline: prefill accelerator", "H100")
    .option("--prefill-tp <n>", "pd/adrenaline: prefill tensor parallelism", int("--prefill-tp"), 1)
    .option("--prefill-instances <n>", "pd/adrenaline: prefill instances", int("--prefill-instances"), 1)
    .option("--decode-device <name>", "pd/adrenaline: decode accelerator", "H100")
    .option("--decode-tp <n>", "pd/adrenaline: decode tensor parallelism", int("--decode-tp"), 1)
    .option("--decode-instances <n>", "pd/adrenaline: decode instances", int("--decode-instances"), 1)
    .option(
      "--offload <ratio|auto>",
      "adrenaline: offloaded share of decode requests, or auto (load-aware bound)",
      offload,
      "auto",
    )
    .option(
      "--prefill-share <x>",
      "adrenaline: compute share kept by prefill on its devices",
      num("--prefill-share", { max: 1 }),
      0.7,
    )
    .option("--max-batch <n>", "largest decode batch per instance", int("--max-batch"), 1024)
    .option("--chunk-tokens <n>", "colocated chunked-prefill tokens per step", int("--chunk-tokens"), 2048)
    .option(
      "--kv-headroom <n>",
      "KV tokens per running request kept free at admission",
      int("--kv-headroom", 0),
      32,
    )
    .option("--tpot-slo-ms <x>", "TPOT SLO used by Adrenaline's load-aware bound", num("--tpot-slo-ms"))
    .action(
      guarded(
        () => run,
        (o: RunOpts) => {
          checkPlacementFlags(run, o.placement);
          const { catalog, trace, eff } = setupCommon(o);
          const placement = placementFrom(o);
          const r = simulate(trace, {
            model: resolveModel(catalog, o.model),
            placement,
            network: findNetwork(catalog, o.network),
            catalog,
            efficiency: eff,
            decodeOnly: o.decodeOnly ?? false,
            maxBatch: o.maxBatch,
            chunkTokens: o.chunkTokens,
            kvHeadroomTokens: o.kvHeadroom,
            tpotSlo: o.tpotSloMs === undefined ? undefined : o.tpotSloMs / 1e3,
          });
          io.out(o.json ? JSON.stringify(r, null, 2) + "\n" : formatSimResult(r));
          if (o.out) {
            writeJson(o.out, "sim.json", r);
            writeText(o.out, "sim-tbt.svg", tbtBreakdownSvg(`TBT breakdown: ${r.label}`, [r]));
            if (!o.json) io.out(`wrote ${o.out}/sim.json, sim-tbt.svg\n`);
          }
        },
      ),
    );

  const bw: Command = sim
    .command("bandwidth")
    .description("Lamina's minimum model↔attention bandwidth vs batch (Fig. 4)")
    .requiredOption("--model <name|config.json>", "catalog model name or a Hugging Face config.json")
    .option("--model-device <name>", "model-worker accelerator", "H100")
    .option("--model-tp <n>", "model devices per replica (0 = smallest that fits)", int("--model-tp", 0), 0)
    .option("--attention-device <name>", "attention-worker accelerator", "H20")
    .option("--attention-devices <n>", "attention devices", int("--attention-devices"), 2)
    .option("--context <tokens>", "context length per request (comma list for several curves)", list, [
      "1024",
      "4096",
    ])
    .option("--alpha <x>", "share of step time allowed for networking", num("--alpha", { max: 1 }), 0.2)
    .option("--max-batch <n>", "largest batch on the curve", int("--max-batch"), 1024)
    .option("--catalog <file>", "extra catalog JSON (repeatable)", collect)
    .option("--json", "print JSON")
    .option("--out <dir>", "write bandwidth.json and bandwidth.svg here")
    .action(
      guarded(
        () => bw,
        (o: {
          model: string;
          modelDevice: string;
          modelTp: number;
          attentionDevice: string;
          attentionDevices: number;
          context: string[];
          alpha: number;
          maxBatch: number;
          catalog?: string[];
          json?: boolean;
          out?: string;
        }) => {
          const catalog = loadCatalog(o.catalog ?? []);
          const m = resolveModel(catalog, o.model);
          const ma = findAccelerator(catalog, o.modelDevice);
          const aa = findAccelerator(catalog, o.attentionDevice);
          let tp = o.modelTp;
          if (tp === 0) {
            tp = 1;
            while (tp <= 64 && m.weightBytes >= tp * (ma.memoryBytes * 0.9 - 2e9)) tp *= 2;
          }
          const batches: number[] = [];
          for (let b = 1; b <= o.maxBatch; b = b < 16 ? b * 2 : b + 16) batches.push(b);
          const series = o.context.map((c) => {
            const ctx = Number(c);
            if (!(Number.isInteger(ctx) && ctx > 0))
              throw new ConfigError(`--context must list positive integers (got "${c}")`);
            return {
              name: `context ${ctx}`,
              points: bandwidthCurve(
                m,
                ma,
                tp,
                aa,
                o.attentionDevices,
                ctx,
                o.alpha,
                batches,
                DEFAULT_EFFICIENCY,
              ),
            };
          });
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
            const rows = batches
              .filter((b) => b === 1 || b % 64 === 0 || b === 300)
              .map((b) => [
                String(b),
                ...series.map((s) =>
                  ((s.points.find((p) => p.batch === b)?.bandwidth ?? Number.NaN) / 1e9).toFixed(1),
                ),
              ]);
            io.out(
              `${m.name}: ${tp}×${ma.name} model, ${o.attentionDevices}×${aa.name} attention, α = ${o.alpha} (GB/s)\n`,
            );
            io.out(formatTable(["batch", ...series.map((s) => s.name)], rows));
          }
          if (o.out) {
            writeJson(o.out, "bandwidth.json", { ...meta, series });
            writeText(
              o.out,
              "bandwidth.svg",
              bandwidthSvg(`Minimum bandwidth, ${m.name} on ${ma.name}+${aa.name}, α=${o.alpha}`, series, 30),
            );
          }
        },
      ),
    );

  sim
    .command("catalog")
    .description("list the accelerators, models and networks the simulator knows")
    .option("--catalog <file>", "extra catalog JSON (repeatable)", collect)
    .action((o: { catalog?: string[] }) => {
      const c = loadCatalog(o.catalog ?? []);
      io.out(
        formatTable(
          ["accelerator", "TFLOP/s", "GB", "TB/s", "NIC GB/s", "$/h"],
          c.accelerators.map((a) => [
            a.name,
            (a.flops / 1e12).toFixed(0),
            (a.memoryBytes / 1e9).toFixed(0),
            (a.memoryBandwidth / 1e12).toFixed(2),
            (a.nicBandwidth / 1e9).toFixed(1),
            a.pricePerHour.toFixed(2),
          ]),
        ),
      );
      io.out(
        "\n" +
          formatTable(
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
          ),
      );
      io.out(
        "\n" +
          formatTable(
            ["network", "GB/s", "latency us"],
            c.networks.map((n) => [n.name, (n.bandwidth / 1e9).toFixed(1), (n.latency * 1e6).toFixed(1)]),
          ),
      );
    });

  interface PlanOpts extends CommonOpts {
    sloTbtMs: number;
    sloStat: SloStatistic;
    budget?: number;
    devices?: string[];
    kinds?: PlacementKind[];
    load: "saturate" | "trace";
    maxConfigs: number;
  }
  const planCmd: Command = common(
    program
      .command("plan")
      .description(
        "rank homogeneous, Lamina, PD and Adrenaline configurations by throughput per dollar under a TBT SLO",
      ),
  )
    .requiredOption("--slo-tbt-ms <x>", "time-between-tokens SLO in ms", num("--slo-tbt-ms"))
    .option(
      "--slo-stat <stat>",
      "TBT statistic the SLO bounds: mean, p50, p99",
      oneOf("--slo-stat", ["mean", "p50", "p99"] as const),
      "p99",
    )
    .option("--budget <usd>", "largest cluster price in $/h", num("--budget"))
    .option(
      "--devices <list>",
      "accelerators to consider (comma list; default H100,H20,A100-80GB,H200,L40S)",
      list,
    )
    .option("--kinds <list>", `placements to consider (comma list of ${KINDS.join(", ")})`, (v: string) =>
      list(v).map(oneOf("--kinds", KINDS)),
    )
    .option(
      "--load <mode>",
      "saturate (capacity, default) or trace (arrivals at trace times)",
      oneOf("--load", ["saturate", "trace"] as const),
      "saturate",
    )
    .option("--max-configs <n>", "simulate at most n configurations", int("--max-configs"), 100)
    .action(
      guarded(
        () => planCmd,
        (o: PlanOpts) => {
          const { catalog, trace, eff } = setupCommon({
            ...o,
            saturate: o.saturate || o.load === "saturate",
          });
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
        },
      ),
    );
}
