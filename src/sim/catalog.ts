import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { modelFromHfConfig } from "./hf-config.js";
import type { Accelerator, Network, SimModel } from "./types.js";

/**
 * The catalogs (accelerators, models, networks) are JSON files in `catalogs/` at the repository
 * root, so users can read and extend them; `--catalog FILE` merges more entries on top.
 */

const named = {
  name: z.string().min(1),
  aliases: z.array(z.string()).default([]),
  source: z.string().min(1),
};

const acceleratorSchema = z.object({
  ...named,
  bf16Tflops: z.number().positive(),
  memoryGB: z.number().positive(),
  memoryBandwidthTBs: z.number().positive(),
  interChipGBs: z.number().nonnegative(),
  networkGbps: z.number().positive(),
  powerW: z.number().positive().nullable().default(null),
  pricePerHour: z.number().positive(),
});

const modelSchema = z.object({
  ...named,
  params: z.number().positive(),
  weightGB: z.number().positive(),
  layers: z.number().int().positive(),
  hidden: z.number().int().positive(),
  heads: z.number().int().positive(),
  kvHeads: z.number().int().positive(),
  headDim: z.number().int().positive(),
  intermediate: z.number().int().positive(),
  vocab: z.number().int().positive(),
  bytesPerElement: z.number().positive().default(2),
});

const networkSchema = z.object({
  ...named,
  bandwidthGBs: z.number().positive(),
  latencyUs: z.number().nonnegative(),
});

const catalogFileSchema = z.object({
  accelerators: z.array(acceleratorSchema).optional(),
  models: z.array(modelSchema).optional(),
  networks: z.array(networkSchema).optional(),
});

export interface Catalog {
  readonly accelerators: readonly Accelerator[];
  readonly models: readonly SimModel[];
  readonly networks: readonly Network[];
}

/** The repository's catalogs/ directory (works from src/ and from dist/src/). */
export function catalogDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const up of ["../..", "../../.."]) {
    const dir = path.resolve(here, up, "catalogs");
    if (existsSync(path.join(dir, "accelerators.json"))) return dir;
  }
  throw new Error("catalogs/ not found beside the package (expected catalogs/accelerators.json)");
}

function readCatalogFile(file: string): z.infer<typeof catalogFileSchema> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`catalog ${file}: cannot read JSON (${(e as Error).message})`);
  }
  const parsed = catalogFileSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`catalog ${file}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

function toModel(m: z.infer<typeof modelSchema>): SimModel {
  if (m.heads % m.kvHeads !== 0)
    throw new Error(`model ${m.name}: heads ${m.heads} not a multiple of kvHeads`);
  return { ...m, weightBytes: m.weightGB * 1e9 };
}

function toAccelerator(a: z.infer<typeof acceleratorSchema>): Accelerator {
  return {
    name: a.name,
    aliases: a.aliases,
    source: a.source,
    flops: a.bf16Tflops * 1e12,
    memoryBytes: a.memoryGB * 1e9,
    memoryBandwidth: a.memoryBandwidthTBs * 1e12,
    interChipBandwidth: a.interChipGBs * 1e9,
    nicBandwidth: (a.networkGbps * 1e9) / 8,
    powerW: a.powerW,
    pricePerHour: a.pricePerHour,
  };
}

function toNetwork(n: z.infer<typeof networkSchema>): Network {
  return {
    name: n.name,
    aliases: n.aliases,
    source: n.source,
    bandwidth: n.bandwidthGBs * 1e9,
    latency: n.latencyUs * 1e-6,
  };
}

/** Merges b over a by name (later files replace entries of the same name). */
function mergeByName<T extends { name: string }>(a: readonly T[], b: readonly T[]): T[] {
  const out = new Map<string, T>();
  for (const x of [...a, ...b]) out.set(x.name.toLowerCase(), x);
  return [...out.values()];
}

/** Loads the built-in catalogs plus any extra catalog files (same shape, any subset of sections). */
export function loadCatalog(extraFiles: readonly string[] = []): Catalog {
  const dir = catalogDir();
  const files = ["accelerators.json", "models.json", "networks.json"].map((f) => path.join(dir, f));
  let accelerators: Accelerator[] = [];
  let models: SimModel[] = [];
  let networks: Network[] = [];
  for (const f of [...files, ...extraFiles]) {
    const c = readCatalogFile(f);
    accelerators = mergeByName(accelerators, (c.accelerators ?? []).map(toAccelerator));
    models = mergeByName(models, (c.models ?? []).map(toModel));
    networks = mergeByName(networks, (c.networks ?? []).map(toNetwork));
  }
  return { accelerators, models, networks };
}

function findNamed<T extends { name: string; aliases: readonly string[] }>(
  kind: string,
  list: readonly T[],
  name: string,
): T {
  const key = name.trim().toLowerCase();
  const hit = list.find(
    (x) => x.name.toLowerCase() === key || x.aliases.some((a) => a.toLowerCase() === key),
  );
  if (!hit) throw new Error(`unknown ${kind} "${name}"; known: ${list.map((x) => x.name).join(", ")}`);
  return hit;
}

export function findAccelerator(c: Catalog, name: string): Accelerator {
  return findNamed("accelerator", c.accelerators, name);
}

export function findNetwork(c: Catalog, name: string): Network {
  return findNamed("network", c.networks, name);
}

/** A catalog model name, or a path to a Hugging Face config.json (or a directory holding one). */
export function resolveModel(c: Catalog, nameOrPath: string): SimModel {
  const looksLikePath = nameOrPath.includes("/") || nameOrPath.endsWith(".json") || existsSync(nameOrPath);
  if (!looksLikePath) return findNamed("model", c.models, nameOrPath);
  let file = nameOrPath;
  if (existsSync(file) && !file.endsWith(".json")) file = path.join(file, "config.json");
  if (!existsSync(file)) throw new Error(`model config not found: ${file}`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`model config ${file}: cannot read JSON (${(e as Error).message})`);
  }
  return modelFromHfConfig(raw, file);
}
