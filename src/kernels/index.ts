import { readFileSync } from "node:fs";
import type { KernelBackend, KvDType } from "./backend.js";
import { NativeBackend } from "./native.js";
import { loadNativeAddon, type NativeAddon } from "./native-addon.js";
import { ReferenceBackend } from "./reference.js";

export type BackendChoice = "auto" | "native" | "reference";

export interface LoadKernelOptions {
  backend?: BackendChoice;
  threads?: number;
  /**
   * Whether the native kernels also hold weights in the 32-value block formats (Q8_0, Q4_0, Q4_1,
   * Q5_0, Q5_1, IQ4_NL) packed 16 rows a vector, where the CPU has the row path for it (default
   * true: decode reads them 1.2-4x faster, for as much memory again); prefill-only processes, whose
   * batches read the weights as stored, say false.
   */
  weightPacking?: boolean;
}

const CHOICES: readonly BackendChoice[] = ["auto", "native", "reference"];

/** LAMINA_BACKEND, when set, overrides what the caller asked for. */
function effectiveChoice(asked: BackendChoice | undefined): BackendChoice {
  const env = process.env.LAMINA_BACKEND;
  if (env !== undefined && env !== "") {
    if (!(CHOICES as readonly string[]).includes(env))
      throw new Error(`LAMINA_BACKEND must be one of ${CHOICES.join(", ")}, got "${env}"`);
    return env as BackendChoice;
  }
  const choice = asked ?? "auto";
  if (!CHOICES.includes(choice))
    throw new Error(`backend must be one of ${CHOICES.join(", ")}, got "${choice}"`);
  return choice;
}

let warnedFallback = false;

/**
 * The kernel backend for this thread. "auto" (the default) takes the native addon and, if it
 * cannot be loaded, falls back to the TypeScript reference with a one-time warning saying why;
 * "native" throws instead of falling back.
 */
export function loadKernelBackend(opts: LoadKernelOptions = {}): KernelBackend {
  const choice = effectiveChoice(opts.backend);
  let backend: KernelBackend;
  if (choice === "reference") {
    backend = new ReferenceBackend();
  } else {
    try {
      backend = new NativeBackend(loadNativeAddon().addon);
    } catch (e) {
      const why = (e as Error).message;
      if (choice === "native") throw new Error(`native kernels unavailable: ${why}`);
      if (!warnedFallback) {
        warnedFallback = true;
        process.emitWarning(
          `native kernels unavailable (${why}); using the TypeScript reference kernels, which are far slower`,
          { code: "LAMINA_KERNEL_FALLBACK" },
        );
      }
      backend = new ReferenceBackend();
    }
  }
  if (opts.threads !== undefined) {
    if (!Number.isInteger(opts.threads) || opts.threads < 1)
      throw new RangeError(`threads must be a positive integer, got ${opts.threads}`);
    backend.setThreads(opts.threads);
  }
  if (opts.weightPacking === false && backend instanceof NativeBackend) backend.setWeightPacking(false);
  return backend;
}

export interface KernelReport {
  /** CPU features relevant to the kernels. */
  cpu: string[];
  /** The kernel variant in use: "amxbf16", "avx512bf16", "avx512", "avx2", "portable" or "reference". */
  variant: string;
  reason: string;
  /** Every variant this CPU can run, best first (LAMINA_KERNEL_VARIANT may name any of them). */
  supported: string[];
  /** How products on bf16 weights multiply: vdpbf16ps with activations rounded to bf16, or fp32 FMA. */
  bf16Products: string;
  /** The quantized products' variant (block-format weights; "reference" without the addon). */
  quantProducts: string;
  /** The path int8 KV attention takes: "avx512vnni" or "avxvnni" dot products, "maddubs" (byte products without VNNI), "widen", or "reference". */
  int8Attention: string;
  /** How grouped-query attention multiplies a bf16 cache: vdpbf16ps, or K and V widened to fp32. */
  bf16Attention: string;
  /** How streamed weight and KV rows reach the cores: asked for ahead in software (Intel CPUs), or the hardware prefetcher alone. */
  reads: string;
  threads: number;
  addonPath: string | null;
  error?: string;
}

const FMA_PRODUCTS = "fp32 multiply-add (weights widened to fp32)";
// Prompt runs (8+ tokens of a sequence) go through tiles of query tokens on every variant.
const PROMPT_TILES = "prompt chunks in tiles of query tokens";
const BF16_DOT_ATTENTION = `vdpbf16ps for grouped queries (queries and probabilities rounded to bf16); ${PROMPT_TILES}`;
const WIDENED_ATTENTION = `fp32 multiply-add (K and V widened to fp32); ${PROMPT_TILES}`;
const AMX_PROMPT_ATTENTION = `fp32 multiply-add for decode tokens (K and V widened to fp32); ${PROMPT_TILES} through AMX (queries and probabilities rounded to bf16)`;
const REFERENCE_ATTENTION = "fp32, one query token at a time (the TypeScript reference)";
const READ_AHEAD =
  "float weights' rows 4 KiB and KV rows 16 KiB ahead in software (this CPU's default: Intel's)";
/** What the reads line says where float weights and caches are left to the hardware prefetcher. */
function hardwareReads(bf16DotAhead: boolean): string {
  const ahead = bf16DotAhead
    ? "int8 caches, grouped queries on bf16 caches and quantized weights"
    : "int8 caches and quantized weights";
  return `float weights and caches through the hardware prefetcher (${ahead} ask ahead)`;
}

const RELEVANT_FLAGS = [
  "sse4_2",
  "avx",
  "avx2",
  "fma",
  "f16c",
  "avx512f",
  "avx512bw",
  "avx512vl",
  "avx512_vnni",
  "avx512_bf16",
  "avx512_fp16",
  "amx_bf16",
  "amx_int8",
];

/** Without the addon, the CPU features Linux reports (empty elsewhere). */
function cpuFlagsFromOs(): string[] {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("flags"));
    const flags = new Set((line?.split(":")[1] ?? "").trim().split(/\s+/));
    return RELEVANT_FLAGS.filter((f) => flags.has(f));
  } catch {
    return [];
  }
}

/** The quantized products' variant and what else this CPU runs, in one line. */
function quantProducts(addon: NativeAddon): string {
  const q = addon.quantInfo();
  const packed = q.packedRows ? ", 32-value block formats packed 16 rows a vector" : "";
  return `${q.variant}, int8 activations per 32 values${packed} (supported: ${q.supported.join(" ")})`;
}

/**
 * A KV dtype as the start-up logs name it: for int8, also the path `backend` reads that cache
 * through ("avx512vnni", "avxvnni", "maddubs" on CPUs without VNNI, "widen", or "reference").
 */
export function describeKvDtype(dtype: KvDType, backend: KernelBackend): string {
  if (dtype !== "int8") return dtype;
  return `int8 (read through ${backend instanceof NativeBackend ? backend.info().int8Attention : "reference"})`;
}

/** What `lamina doctor` prints: which kernels this thread would get, and why. */
export function kernelReport(): KernelReport {
  const env = process.env.LAMINA_BACKEND;
  if (env === "reference")
    return {
      cpu: cpuFlagsFromOs(),
      variant: "reference",
      reason: "LAMINA_BACKEND=reference",
      supported: [],
      bf16Products: FMA_PRODUCTS,
      quantProducts: "reference",
      int8Attention: "reference",
      bf16Attention: REFERENCE_ATTENTION,
      reads: "reference",
      threads: 1,
      addonPath: null,
    };
  try {
    const { addon, path } = loadNativeAddon();
    const i = addon.info();
    return {
      cpu: i.cpu,
      variant: i.variant,
      reason: i.reason,
      supported: i.supported,
      bf16Products: i.tiles
        ? "AMX tiles for batches, vdpbf16ps otherwise (activations rounded to bf16, fp32 sums)"
        : i.bf16Dot
          ? "vdpbf16ps (activations rounded to bf16, fp32 sums)"
          : FMA_PRODUCTS,
      quantProducts: quantProducts(addon),
      int8Attention: i.int8Attention,
      bf16Attention: i.bf16DotAttention
        ? BF16_DOT_ATTENTION
        : i.tiles
          ? AMX_PROMPT_ATTENTION
          : WIDENED_ATTENTION,
      reads: i.readAhead ? READ_AHEAD : hardwareReads(i.bf16DotAttention && i.readAheadBf16Dot),
      threads: i.threads,
      addonPath: path,
    };
  } catch (e) {
    return {
      cpu: cpuFlagsFromOs(),
      variant: "reference",
      reason: "the native addon could not be loaded; the TypeScript reference kernels are used",
      supported: [],
      bf16Products: FMA_PRODUCTS,
      quantProducts: "reference",
      int8Attention: "reference",
      bf16Attention: REFERENCE_ATTENTION,
      reads: "reference",
      threads: 1,
      addonPath: null,
      error: (e as Error).message,
    };
  }
}
