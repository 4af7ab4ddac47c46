import type { Command } from "commander";
import { ConfigError } from "../sim/instances.js";
import type { Placement, PlacementKind } from "../sim/placement.js";
import { choiceArg, floatAboveArg, InvalidValueError, intArg, named, ratioArg } from "./parse.js";

export const PLACEMENT_KINDS: readonly PlacementKind[] = ["homogeneous", "lamina", "pd", "adrenaline"];

/** The flags that describe one placement (each applies to some kinds only). */
export interface PlacementFlags {
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
}

/** A ratio in [0, 1), or "auto" for Adrenaline's load-aware bound. */
function offloadArg(value: string): number | "auto" {
  if (value === "auto") return "auto";
  try {
    return ratioArg(value);
  } catch (e) {
    if (e instanceof InvalidValueError) throw new InvalidValueError(`"auto" or ${e.form}`, value);
    throw e;
  }
}

export function addPlacementOptions(cmd: Command): Command {
  return cmd
    .option(
      "--placement <kind>",
      `one of ${PLACEMENT_KINDS.join(", ")}`,
      named("--placement", choiceArg(PLACEMENT_KINDS)),
      "homogeneous",
    )
    .option("--device <name>", "homogeneous: accelerator", "H100")
    .option("--tp <n>", "homogeneous: tensor parallelism per instance", named("--tp", intArg(1)), 1)
    .option("--replicas <n>", "homogeneous: instances", named("--replicas", intArg(1)), 1)
    .option("--model-device <name>", "lamina: model-worker accelerator", "H100")
    .option("--attention-device <name>", "lamina: attention-worker accelerator", "H20")
    .option("--a <n>", "lamina: model devices", named("--a", intArg(1)), 1)
    .option("--b <n>", "lamina: attention devices", named("--b", intArg(1)), 1)
    .option(
      "--micro-batches <n>",
      "lamina: concurrent micro-batches n (0 = auto: 2, or replicas + 1)",
      named("--micro-batches", intArg(0)),
      0,
    )
    .option("--prefill-device <name>", "pd/adrenaline: prefill accelerator", "H100")
    .option(
      "--prefill-tp <n>",
      "pd/adrenaline: prefill tensor parallelism",
      named("--prefill-tp", intArg(1)),
      1,
    )
    .option(
      "--prefill-instances <n>",
      "pd/adrenaline: prefill instances",
      named("--prefill-instances", intArg(1)),
      1,
    )
    .option("--decode-device <name>", "pd/adrenaline: decode accelerator", "H100")
    .option("--decode-tp <n>", "pd/adrenaline: decode tensor parallelism", named("--decode-tp", intArg(1)), 1)
    .option(
      "--decode-instances <n>",
      "pd/adrenaline: decode instances",
      named("--decode-instances", intArg(1)),
      1,
    )
    .option(
      "--offload <ratio|auto>",
      "adrenaline: offloaded share of decode requests, or auto (load-aware bound)",
      named<number | "auto">("--offload", offloadArg),
      "auto",
    )
    .option(
      "--prefill-share <x>",
      "adrenaline: compute share kept by prefill on its devices",
      named("--prefill-share", floatAboveArg(0, 1)),
      0.7,
    );
}

export function placementFrom(o: PlacementFlags): Placement {
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

const PD_FLAGS = [
  "prefillDevice",
  "prefillTp",
  "prefillInstances",
  "decodeDevice",
  "decodeTp",
  "decodeInstances",
];
/** Which placement flags (commander attribute names) apply to which placement; --tpot-slo-ms is Adrenaline's. */
const PLACEMENT_FLAGS: Record<PlacementKind, readonly string[]> = {
  homogeneous: ["device", "tp", "replicas"],
  lamina: ["modelDevice", "attentionDevice", "a", "b", "microBatches"],
  pd: PD_FLAGS,
  adrenaline: [...PD_FLAGS, "offload", "prefillShare", "tpotSloMs"],
};

/** A placement flag given on the command line for another placement is a mistake: say so. */
export function checkPlacementFlags(cmd: Command, kind: PlacementKind): void {
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
