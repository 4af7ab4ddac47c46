import { readFileSync } from "node:fs";
import { z } from "zod";
import type { Catalog } from "./catalog.js";
import { DEFAULT_EFFICIENCY, type Efficiency } from "./efficiency.js";
import type { Placement } from "./placement.js";
import { type SimResult, simulate } from "./simulate.js";
import type { Trace } from "./trace.js";
import type { Accelerator, Network, SimModel } from "./types.js";

/**
 * A GEMM fit: the roofline asymptote and half-batch, and optionally the measured points it was fit
 * to, as the FLOP/s a whole decode pass reached at each batch. Where points are given the replica
 * of our engine interpolates between them (the roofline's two parameters cannot follow the measured
 * curve: on an AVX-512 EPYC it ran batch 8 and 16 about 10% slower than measured and batch 32 13%
 * faster), and the fit is kept for batches beyond the last point and for the cluster simulator.
 */
const gemmFitSchema = z.object({
  peakFlops: z.number().positive(),
  halfBatch: z.number().positive(),
  points: z
    .array(z.object({ batch: z.number().int().positive(), flops: z.number().positive() }))
    .min(2)
    .refine((pts) => pts.every((p, i) => i === 0 || p.batch > pts[i - 1]!.batch), "batches must increase")
    .optional(),
});
export type GemmFit = z.infer<typeof gemmFitSchema>;

/**
 * A device profile: throughputs of the project's own kernels measured on one machine, so the
 * simulator can predict what our engine does there. Written by a benchmark, read here.
 *
 * {
 *   "version": 1, "name": "dev-2core", "measuredAt": "2026-…",
 *   "memoryBytes": 24e9,
 *   "gemm": { "peakFlops": 1.7e11, "halfBatch": 6 },     // batched GEMM FLOP/s (asymptote) and batch at half of it,
 *                                                         // optionally "points": [{ "batch", "flops" }] measured
 *   "weightBandwidth": 2.3e10,                            // GEMV (batch-1) weight streaming, bytes/s
 *   "attentionBandwidth": 2.6e10,                         // decode attention KV read rate, bytes/s
 *   "layerOverheadS": 2e-5,                               // fixed cost per layer per step
 *   "transport": { "bandwidth": 5e9, "latencyS": 2e-5 },  // model↔attention worker link
 *   "threads": 2,                                         // threads the rates above were measured with
 *   "split": {                                            // optional: one machine split between a model
 *     "modelThreads": 1, "attentionThreads": 1,           // process and attention-worker processes
 *     "gemm": { "peakFlops": 9e10, "halfBatch": 5 }, "weightBandwidth": 1.4e10, "attentionBandwidth": 1.5e10
 *   }
 * }
 */
/** A prompt chunk measured through the engine (DeviceProfile.prefill and prefillWhole). */
const prefillChunkSchema = z.object({
  threads: z.number().int().positive(),
  flops: z.number().positive(),
  /**
   * Tokens of the chunk the rate was measured on (from an empty context). With it the replica
   * separates the chunk's attention, which costs in proportion to its (query, earlier key) pairs,
   * from its GEMMs: a chunk after a long cached context (later chunks of a long prompt, a prompt
   * after a cached prefix) costs more than its FLOPs at one rate say.
   */
  chunkTokens: z.number().int().positive().optional(),
  /**
   * The rate of a chunk's attention over the context before it, with `threads` threads, as bytes/s
   * of K and V counted once per query (the prompt tiles read a key once for a tile of queries, so
   * this is an effective rate, well above the memory's); absent: the decode attention's rate
   * (attentionBandwidth).
   */
  contextBandwidth: z.number().positive().optional(),
});

export const deviceProfileSchema = z.object({
  version: z.literal(1),
  name: z.string().min(1),
  measuredAt: z.string().optional(),
  memoryBytes: z.number().positive(),
  gemm: gemmFitSchema,
  weightBandwidth: z.number().positive(),
  attentionBandwidth: z.number().positive(),
  /**
   * Decode attention's cost per sequence and layer before its bytes, s (with `threads` threads):
   * the intercept of the attention sweep's time against KV bytes, over its batch. At short contexts
   * a sequence's few blocks cost more than their bytes at attentionBandwidth (scattered reads the
   * hardware cannot stream ahead, a task's set-up). Absent: 0, attention by bytes alone.
   */
  attentionSeqS: z.number().nonnegative().optional(),
  layerOverheadS: z.number().nonnegative(),
  transport: z.object({
    bandwidth: z.number().positive(),
    latencyS: z.number().nonnegative(),
    /**
     * One-way latency of a message between processes over the shared-memory channel (half a small
     * request's round trip), s: the per-layer exchange of links without the native data plane (a PD
     * decode instance and its prefill instances). Without it those links are charged `latencyS`.
     */
    messageLatencyS: z.number().nonnegative().optional(),
    /**
     * What a PD prefill instance's thread pays after each prefill layer besides its compute: a
     * yield to its event loop (`layerS`), and gathering the layer's K and V rows of requests whose
     * KV goes back and writing them into the channel, at `bytesPerS` of rows as sent (f32). Without
     * it the stream back is charged the KV's bytes at `bandwidth`.
     */
    kvHandoff: z.object({ layerS: z.number().nonnegative(), bytesPerS: z.number().positive() }).optional(),
  }),
  threads: z.number().int().positive().optional(),
  /** Host-side cost per running sequence per step (sampling, detokenization, scheduling), s. */
  tokenOverheadS: z.number().nonnegative().optional(),
  /**
   * GEMM rate of a prompt chunk (hundreds of tokens at once) with `threads` kernel threads, FLOP/s:
   * prefill runs far above the decode batches the GEMM sweep covers. Without it the replica of our
   * engine (replica/) prefills at the sweep's asymptote.
   */
  prefill: prefillChunkSchema.optional(),
  /**
   * The same measured with every core (`threads` the profile's), where it differs from `prefill`'s
   * thread count: a side running that many threads takes it instead of `prefill` scaled by threads
   * (two threads prefill at less than twice one's rate). For this profile's model widths only.
   */
  prefillWhole: prefillChunkSchema.optional(),
  /**
   * Rates measured on other models' widths with `threads` kernel threads (matrix products run well
   * below the rate at narrow widths: 512 hidden prefills at about 3/4 of 768's rate on one core): a
   * prediction for a model of this hidden and intermediate size uses its entry instead of `prefill`,
   * and its GEMM fit and weight rate for sides of that thread count.
   */
  modelShapes: z
    .array(
      z.object({
        hidden: z.number().int().positive(),
        intermediate: z.number().int().positive(),
        threads: z.number().int().positive(),
        prefillFlops: z.number().positive(),
        /** As prefill.chunkTokens. */
        prefillChunkTokens: z.number().int().positive().optional(),
        gemm: gemmFitSchema.optional(),
        weightBandwidth: z.number().positive().optional(),
      }),
    )
    .optional(),
  /**
   * Host stall per kernel thread count: a sustained loop's mean pass time over its median (≥ 1).
   * The rates above are medians of short bursts; an engine run lasts seconds and pays every pass a
   * descheduled thread delays, so a side running `threads` threads has its rates divided and its
   * fixed costs multiplied by the factor measured for that thread count (1 where none was).
   */
  stall: z.array(z.object({ threads: z.number().int().positive(), factor: z.number().min(1) })).optional(),
  /**
   * Rates each side reaches when the machine is split between the model worker and the attention
   * workers (disaggregated on one host: they share its cores). Without it the disaggregated
   * prediction gives each side the whole machine's rates, which is right only for separate hosts.
   */
  split: z
    .object({
      modelThreads: z.number().int().positive(),
      attentionThreads: z.number().int().positive(),
      gemm: gemmFitSchema,
      weightBandwidth: z.number().positive(),
      attentionBandwidth: z.number().positive(),
      /** As attentionSeqS, with attentionThreads threads. */
      attentionSeqS: z.number().nonnegative().optional(),
      /** The engine's per-layer and per-sequence step costs with the model side's threads. */
      layerOverheadS: z.number().nonnegative().optional(),
      tokenOverheadS: z.number().nonnegative().optional(),
    })
    .optional(),
});

export type DeviceProfile = z.infer<typeof deviceProfileSchema>;

export function parseDeviceProfile(raw: unknown, where = "device profile"): DeviceProfile {
  const r = deviceProfileSchema.safeParse(raw);
  if (!r.success) throw new Error(`${where}: ${z.prettifyError(r.error)}`);
  return r.data;
}

export function loadDeviceProfile(file: string): DeviceProfile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`device profile ${file}: cannot read JSON (${(e as Error).message})`);
  }
  return parseDeviceProfile(raw, `device profile ${file}`);
}

/**
 * The profile as a catalog accelerator plus efficiencies: peaks are the measured rates, so the
 * efficiency factors become 1 (the measurement already contains them).
 */
export function profileToDevice(p: DeviceProfile): { acc: Accelerator; eff: Efficiency; network: Network } {
  const acc: Accelerator = {
    name: p.name,
    aliases: [],
    source: `device profile ${p.name}${p.measuredAt ? ` (${p.measuredAt})` : ""}`,
    flops: p.gemm.peakFlops,
    memoryBytes: p.memoryBytes,
    memoryBandwidth: p.weightBandwidth,
    interChipBandwidth: p.transport.bandwidth,
    nicBandwidth: p.transport.bandwidth,
    powerW: null,
    pricePerHour: 1,
  };
  const eff: Efficiency = {
    ...DEFAULT_EFFICIENCY,
    mfuMax: 1,
    mfuHalfBatch: p.gemm.halfBatch,
    tpMfuLossPerDoubling: 0,
    prefillMfu: 1,
    weightMbu: 1,
    attentionMbu: p.attentionBandwidth / p.weightBandwidth,
    layerOverhead: p.layerOverheadS,
    tokenOverhead: p.tokenOverheadS ?? 0,
    memoryUtilization: 1,
    activationReserve: 0,
  };
  const network: Network = {
    name: `${p.name}-transport`,
    aliases: [],
    source: acc.source,
    bandwidth: p.transport.bandwidth,
    latency: p.transport.latencyS,
  };
  return { acc, eff, network };
}

export interface EnginePrediction {
  /** "colocated": one process runs everything; "disaggregated": model worker + attention workers (Lamina). */
  readonly mode: "colocated" | "disaggregated";
  readonly attentionWorkers?: number;
  /** Concurrent micro-batches in disaggregated mode (2 = ping-pong). */
  readonly microBatches?: number;
  readonly maxBatch?: number;
}

/**
 * Predicts our engine's decode throughput for `trace` on the profiled machine (prompts prefilled,
 * i.e. decode only), colocated or disaggregated: the number a calibration benchmark compares
 * with the measured one.
 */
export function predictEngineThroughput(
  profile: DeviceProfile,
  model: SimModel,
  trace: Trace,
  how: EnginePrediction,
): SimResult {
  const { acc, eff, network } = profileToDevice(profile);
  let catalog: Catalog = { accelerators: [acc], models: [model], networks: [network] };
  let efficiency = eff;
  let placement: Placement = { kind: "homogeneous", device: acc.name, tp: 1, replicas: 1 };
  if (how.mode === "disaggregated") {
    const sides = splitDevices(profile, acc);
    catalog = { ...catalog, accelerators: [sides.model, sides.attention] };
    // Each side's accelerator carries its own measured rate, so attention needs no efficiency factor.
    if (profile.split) efficiency = { ...eff, mfuHalfBatch: profile.split.gemm.halfBatch, attentionMbu: 1 };
    placement = {
      kind: "lamina",
      modelDevice: sides.model.name,
      attentionDevice: sides.attention.name,
      a: 1,
      b: how.attentionWorkers ?? 1,
      microBatches: how.microBatches ?? 2,
    };
  }
  return simulate(trace, {
    model,
    placement,
    network,
    catalog,
    efficiency,
    decodeOnly: true,
    maxBatch: how.maxBatch ?? 64,
  });
}

/**
 * The model-side and attention-side accelerators of a disaggregated prediction: with a split, each
 * gets the rates measured with its own share of the machine's threads; without, both are the
 * whole profiled device (separate hosts).
 */
export function splitDevices(
  p: DeviceProfile,
  whole: Accelerator,
): { model: Accelerator; attention: Accelerator } {
  if (!p.split) return { model: whole, attention: whole };
  const s = p.split;
  return {
    model: {
      ...whole,
      name: `${p.name}-model`,
      source: `${whole.source}, model side (${s.modelThreads} threads)`,
      flops: s.gemm.peakFlops,
      memoryBandwidth: s.weightBandwidth,
    },
    attention: {
      ...whole,
      name: `${p.name}-attention`,
      source: `${whole.source}, attention side (${s.attentionThreads} threads)`,
      memoryBandwidth: s.attentionBandwidth,
    },
  };
}
