import { type OffloadBound, offloadBound } from "../util/offload-bound.js";
import { slicesPerReplica } from "../util/rotation.js";
import type { Catalog } from "./catalog.js";
import { findAccelerator } from "./catalog.js";
import { attentionTime, kvBytesPerToken, nonAttentionTime, usableBytes, weightsFit } from "./cost-model.js";
import { DEFAULT_EFFICIENCY, type Efficiency } from "./efficiency.js";
import {
  adrenalineRemote,
  ConfigError,
  type DecodeInstanceModel,
  LaminaInstance,
  PrefillServer,
  type PrefillServerModel,
  TensorParallelInstance,
} from "./instances.js";
import { type Placement, placementDevices } from "./placement.js";
import type { Accelerator, Network, SimModel } from "./types.js";

/** Everything a simulation run needs besides the trace. */
export interface SimOptions {
  readonly model: SimModel;
  readonly placement: Placement;
  readonly network: Network;
  readonly catalog: Catalog;
  readonly efficiency?: Efficiency;
  /** Homogeneous/Lamina only: prompts arrive prefilled (decode throughput as in Lamina's Table 5). */
  readonly decodeOnly?: boolean;
  /** Largest decode batch per instance (vLLM max_num_seqs). */
  readonly maxBatch?: number;
  /** Prompt tokens per step in colocated chunked prefill. */
  readonly chunkTokens?: number;
  /** Token budget of one prefill batch on a prefill instance. */
  readonly prefillBatchTokens?: number;
  /** KV tokens per running request kept free at admission so running requests can grow (default 32). */
  readonly kvHeadroomTokens?: number;
  /** TPOT SLO (s), used by Adrenaline's load-aware bound. */
  readonly tpotSlo?: number;
  /** Mean context (tokens) of the trace; default from the trace. */
  readonly meanContext?: number;
  /**
   * Tokens each request counts for in Adrenaline's load-aware bound: the runtime counts every
   * request at the served maximum sequence length (--max-model-len); default the mean context.
   */
  readonly maxContext?: number;
  /**
   * Prefix caching on decode instances that prefill their own prompts, where the trace records
   * shared prefix blocks (default true, as the runtime; sim/prefix-cache.ts). The runtime does not
   * cache prefixes in PD and Adrenaline, and neither does the model of them.
   */
  readonly prefixCaching?: boolean;
}

export interface Setup {
  readonly instances: DecodeInstanceModel[];
  /** Empty when prefill is colocated with decode (or not modelled). */
  readonly prefillServers: PrefillServerModel[];
  readonly decodeOnly: boolean;
  readonly chunkTokens: number;
  readonly prefillBatchTokens: number;
  readonly kvHeadroomTokens: number;
  readonly prefixCaching: boolean;
  readonly pricePerHour: number;
  readonly notes: string[];
  /** Seconds to move a prompt's KV from a prefill to a decode instance. */
  kvTransferTime(tokens: number): number;
}

function positiveInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`${what} must be a positive integer (got ${v})`);
  return v;
}

/** Smallest power-of-two tensor parallelism dividing `a` that holds the weights. */
function smallestFittingTp(m: SimModel, acc: Accelerator, a: number, eff: Efficiency): number {
  for (let tp = 1; tp <= a; tp *= 2) if (a % tp === 0 && weightsFit(m, acc, tp, eff)) return tp;
  throw new ConfigError(
    `lamina: ${m.name} (${(m.weightBytes / 1e9).toFixed(1)} GB) does not fit on ${a}×${acc.name} model devices ` +
      `(${(usableBytes(acc, a, eff) / 1e9).toFixed(1)} GB usable)`,
  );
}

/**
 * Adrenaline's load-aware offload bound N/M, computed by the runtime's own function
 * (util/offload-bound.ts, which pd/offload-policy.ts re-exports): capacities in KV tokens,
 * bandwidths in bytes/s, every request counted at `requestTokens`. B_max is the decode batch cap,
 * lowered to the batch at which a full step reaches the TPOT SLO when one is given (the runtime's
 * cap is its --max-running; the planner sets the simulator's the same way).
 */
export function adrenalineBound(
  m: SimModel,
  acc: Accelerator,
  tp: number,
  localCapacity: number,
  remote: { capacityTokens: number; devices: number; bandwidthShare: number; acc: Accelerator },
  requestTokens: number,
  maxBatch: number,
  eff: Efficiency,
  tpotSlo?: number,
): OffloadBound {
  const bwLocal = tp * acc.memoryBandwidth;
  const bwRemote = remote.devices * remote.acc.memoryBandwidth * remote.bandwidthShare;
  let bMax = maxBatch;
  if (tpotSlo !== undefined) {
    const na = { compute: 0, memory: 0, comm: 0, overhead: 0, total: 0 };
    const bLocal = Math.max(1, localCapacity / requestTokens);
    bMax = 1;
    for (let b = 1; b <= maxBatch; b = Math.max(b + 1, Math.floor(b * 1.05))) {
      nonAttentionTime(m, acc, tp, b, eff, na);
      if (na.total + attentionTime(m, acc, tp, Math.min(b, bLocal) * requestTokens, eff) > tpotSlo) break;
      bMax = b;
    }
  }
  return offloadBound({
    prefillKvBlocks: [remote.capacityTokens],
    decodeKvBlocks: localCapacity,
    prefillAttentionThreads: [bwRemote],
    decodeThreads: bwLocal,
    maxBatch: bMax,
    blocksPerRequest: Math.max(1, requestTokens),
  });
}

/** What the placement-specific builders share. */
interface BuildContext {
  readonly o: SimOptions;
  readonly m: SimModel;
  readonly eff: Efficiency;
  readonly maxBatch: number;
  readonly prefillBatchTokens: number;
  readonly meanContext: number;
  acc(name: string): Accelerator;
}

/** The placement-specific part of a Setup. */
interface Cluster {
  instances: DecodeInstanceModel[];
  prefillServers: PrefillServerModel[];
  notes: string[];
  kvTransferTime(tokens: number): number;
}

const noTransfer = (_tokens: number) => 0;

function homogeneousCluster(c: BuildContext, p: Extract<Placement, { kind: "homogeneous" }>): Cluster {
  positiveInt(p.tp, "tp");
  positiveInt(p.replicas, "replicas");
  const instances: DecodeInstanceModel[] = [];
  for (let i = 0; i < p.replicas; i++)
    instances.push(new TensorParallelInstance(c.m, c.acc(p.device), p.tp, c.eff, c.maxBatch));
  return { instances, prefillServers: [], notes: [], kvTransferTime: noTransfer };
}

function laminaCluster(c: BuildContext, p: Extract<Placement, { kind: "lamina" }>): Cluster {
  const { m, eff } = c;
  positiveInt(p.a, "a (model devices)");
  positiveInt(p.b, "b (attention devices)");
  const ma = c.acc(p.modelDevice);
  let n = p.microBatches;
  if (n === 0) {
    const replicas = p.a / smallestFittingTp(m, ma, p.a, eff);
    n = replicas === 1 ? 2 : replicas + 1;
  }
  const inst = new LaminaInstance(m, ma, c.acc(p.attentionDevice), p.a, p.b, n, c.o.network, eff, c.maxBatch);
  const notes = [
    `lamina: n=${n} micro-batches over ${inst.replicas} replica(s) of TP${inst.tp}; slice k of micro-batch j on replica (j + k) mod ${inst.replicas}, slices per cycle: ${slicesPerReplica(n, m.layers + 1, inst.replicas).join("/")}`,
  ];
  if (inst.attentionImbalance > 1) {
    notes.push(
      `lamina: ${m.kvHeads} KV heads do not divide among ${p.b} attention workers; request-level split assumed`,
    );
  }
  return { instances: [inst], prefillServers: [], notes, kvTransferTime: noTransfer };
}

type Disaggregated = Extract<Placement, { kind: "pd" | "adrenaline" }>;

/** PD and Adrenaline: prefill instances beside decode instances, prompts' KV sent between them. */
function disaggregatedCluster(c: BuildContext, p: Disaggregated): Cluster {
  const { m, eff, o } = c;
  if (o.decodeOnly)
    throw new ConfigError(`${p.kind}: decode-only runs apply to homogeneous and lamina placements`);
  positiveInt(p.prefillTp, "prefill tp");
  positiveInt(p.prefillInstances, "prefill instances");
  positiveInt(p.decodeTp, "decode tp");
  positiveInt(p.decodeInstances, "decode instances");
  const pa = c.acc(p.prefillDevice);
  const da = c.acc(p.decodeDevice);
  const share = p.kind === "adrenaline" ? p.prefillShare : 1;
  if (!(share > 0 && share <= 1)) throw new ConfigError(`prefill share must be in (0, 1] (got ${share})`);
  const prefillServers: PrefillServerModel[] = [];
  for (let i = 0; i < p.prefillInstances; i++)
    prefillServers.push(new PrefillServer(m, pa, p.prefillTp, eff, share));
  const link = Math.min(
    pa.nicBandwidth * p.prefillTp,
    da.nicBandwidth * p.decodeTp,
    o.network.bandwidth * p.decodeTp,
  );
  const kvb = kvBytesPerToken(m);
  const kvTransferTime = (tokens: number) => (tokens * kvb) / link + o.network.latency;
  const notes: string[] = [];
  const instances: DecodeInstanceModel[] = [];
  for (let i = 0; i < p.decodeInstances; i++) {
    instances.push(
      p.kind === "pd"
        ? new TensorParallelInstance(m, da, p.decodeTp, eff, c.maxBatch)
        : adrenalineDecodeInstance(c, p, share, i === 0 ? notes : []),
    );
  }
  return { instances, prefillServers, notes, kvTransferTime };
}

/** An Adrenaline decode instance with its share of the prefill instances' KV and bandwidth. */
function adrenalineDecodeInstance(
  c: BuildContext,
  p: Extract<Placement, { kind: "adrenaline" }>,
  share: number,
  notes: string[],
): DecodeInstanceModel {
  const { m, eff, o } = c;
  const pa = c.acc(p.prefillDevice);
  const da = c.acc(p.decodeDevice);
  const r = adrenalineRemote(
    m,
    pa,
    p.prefillTp,
    p.prefillInstances,
    p.decodeInstances,
    share,
    c.prefillBatchTokens,
    eff,
  );
  let ratio: number;
  if (p.offloadRatio === "auto") {
    const probe = new TensorParallelInstance(m, da, p.decodeTp, eff, c.maxBatch);
    const ob = adrenalineBound(
      m,
      da,
      p.decodeTp,
      probe.localCapacity,
      { ...r, acc: pa },
      o.maxContext ?? c.meanContext,
      c.maxBatch,
      eff,
      o.tpotSlo,
    ).bound;
    ratio = ob / (1 + ob);
    notes.push(`adrenaline: load-aware bound N/M ≤ ${ob.toFixed(2)} → offload ratio ${ratio.toFixed(2)}`);
  } else {
    ratio = p.offloadRatio;
    if (!(ratio >= 0 && ratio < 1)) throw new ConfigError(`offload ratio must be in [0, 1) (got ${ratio})`);
  }
  return new TensorParallelInstance(m, da, p.decodeTp, eff, c.maxBatch, {
    acc: pa,
    devices: r.devices,
    capacityTokens: r.capacityTokens,
    bandwidthShare: r.bandwidthShare,
    network: o.network,
    offloadRatio: ratio,
  });
}

export function buildSetup(o: SimOptions, meanContext: number): Setup {
  const maxBatch = positiveInt(o.maxBatch ?? 1024, "max batch");
  const chunkTokens = positiveInt(o.chunkTokens ?? 2048, "chunk tokens");
  const prefillBatchTokens = positiveInt(o.prefillBatchTokens ?? 8192, "prefill batch tokens");
  const kvHeadroomTokens = o.kvHeadroomTokens ?? 32;
  if (!(kvHeadroomTokens >= 0)) throw new ConfigError(`kv headroom must be ≥ 0 (got ${kvHeadroomTokens})`);
  const acc = (name: string) => findAccelerator(o.catalog, name);
  let pricePerHour = 0;
  for (const d of placementDevices(o.placement)) pricePerHour += acc(d.device).pricePerHour * d.count;
  const c: BuildContext = {
    o,
    m: o.model,
    eff: o.efficiency ?? DEFAULT_EFFICIENCY,
    maxBatch,
    prefillBatchTokens,
    meanContext,
    acc,
  };
  const p = o.placement;
  const cluster =
    p.kind === "homogeneous"
      ? homogeneousCluster(c, p)
      : p.kind === "lamina"
        ? laminaCluster(c, p)
        : disaggregatedCluster(c, p);
  return {
    ...cluster,
    decodeOnly: o.decodeOnly ?? false,
    chunkTokens,
    prefillBatchTokens,
    kvHeadroomTokens,
    prefixCaching: o.prefixCaching ?? true,
    pricePerHour,
  };
}
