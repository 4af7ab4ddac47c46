import { slicesPerReplica } from "../util/rotation.js";
import {
  attentionTime,
  kvBytesPerToken,
  kvCapacityAfterWeights,
  kvCapacityTokens,
  type NonAttentionTime,
  nonAttentionTime,
  prefillTime,
  queryDim,
  transferBytesPerTokenLayer,
  usableBytes,
  weightsFit,
} from "./cost-model.js";
import { bandwidthShareOfSms, type Efficiency } from "./efficiency.js";
import type { Accelerator, Network, SimModel } from "./types.js";

/** What bounds a step's duration. */
export type Limiter =
  | "model-compute"
  | "model-bandwidth"
  | "attention-bandwidth"
  | "network"
  | "latency"
  | "prefill";

/** One batch step's load: local/remote decode batch and KV, and the prefill work riding along. */
export interface StepInput {
  bLocal: number;
  ctxLocal: number;
  bRemote: number;
  ctxRemote: number;
  /** Prompt tokens prefilled in this step (chunked prefill or recompute). */
  prefillTokens: number;
  /** Σ 2·c·(o + c/2) over prefill chunks of c tokens at offset o (p² for a whole prompt of p). */
  prefillWork: number;
}

/** A step's duration and its parts (per-token critical path), filled in place. */
export class StepCost {
  time = 0;
  model = 0;
  attention = 0;
  network = 0;
  prefill = 0;
  limiter: Limiter = "model-bandwidth";
}

/** The step-time model of one decode instance, whatever the placement. */
export interface DecodeInstanceModel {
  /** KV tokens that live with the instance (attention workers' KV for Lamina). */
  readonly localCapacity: number;
  /** KV tokens it may place on remote executors (Adrenaline), else 0. */
  readonly remoteCapacity: number;
  readonly maxBatch: number;
  /** Target share of requests held remotely, N/(M+N). */
  readonly offloadRatio: number;
  /** Peak FLOP/s of the devices running the non-attention operators. */
  readonly modelPeakFlops: number;
  /** Peak memory bandwidth of the devices running attention (local + remote share). */
  readonly attentionPeakBandwidth: number;
  step(s: StepInput, out: StepCost): void;
}

/** Prefill instance of a PD/Adrenaline cluster. */
export interface PrefillServerModel {
  time(tokens: number, work: number): number;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

function linkBandwidth(acc: Accelerator, net: Network): number {
  return Math.min(acc.nicBandwidth, net.bandwidth);
}

function requireFit(m: SimModel, acc: Accelerator, devices: number, eff: Efficiency, role: string): void {
  if (!weightsFit(m, acc, devices, eff)) {
    throw new ConfigError(
      `${role}: ${m.name} weights (${(m.weightBytes / 1e9).toFixed(1)} GB) do not fit on ${devices}×${acc.name} ` +
        `(${(usableBytes(acc, devices, eff) / 1e9).toFixed(1)} GB usable)`,
    );
  }
}

/** Prefill attention FLOP time for `work` (see StepInput.prefillWork) on tp devices. */
function prefillAttentionTime(
  m: SimModel,
  acc: Accelerator,
  tp: number,
  work: number,
  eff: Efficiency,
): number {
  return work > 0 ? (2 * m.layers * queryDim(m) * work) / (tp * acc.flops * eff.prefillMfu) : 0;
}

function classify(na: NonAttentionTime, attention: number, prefill: number): Limiter {
  const gemm = Math.max(na.compute, na.memory);
  if (prefill > gemm && prefill > attention) return "prefill";
  if (attention > gemm) return "attention-bandwidth";
  return na.compute > na.memory ? "model-compute" : "model-bandwidth";
}

/**
 * A tensor-parallel group running everything (vLLM): GEMMs for decode and prefill tokens together
 * (chunked prefill), then attention over its own KV. Also the decode side of PD.
 * With a remote executor (Adrenaline) the offloaded attention overlaps the local one.
 */
export class TensorParallelInstance implements DecodeInstanceModel {
  readonly localCapacity: number;
  readonly remoteCapacity: number;
  readonly modelPeakFlops: number;
  readonly attentionPeakBandwidth: number;
  private readonly na: NonAttentionTime = { compute: 0, memory: 0, comm: 0, overhead: 0, total: 0 };
  private readonly remoteDevices: number;
  private readonly remoteBandwidthShare: number;
  private readonly remoteLink: number;

  constructor(
    private readonly m: SimModel,
    private readonly acc: Accelerator,
    private readonly tp: number,
    private readonly eff: Efficiency,
    readonly maxBatch: number,
    remote?: {
      acc: Accelerator;
      devices: number;
      capacityTokens: number;
      bandwidthShare: number;
      network: Network;
      offloadRatio: number;
    },
  ) {
    requireFit(m, acc, tp, eff, "decode instance");
    this.localCapacity = kvCapacityAfterWeights(m, acc, tp, eff);
    this.modelPeakFlops = tp * acc.flops;
    this.remoteCapacity = remote ? remote.capacityTokens : 0;
    this.remoteDevices = remote ? remote.devices : 0;
    this.remoteBandwidthShare = remote ? remote.bandwidthShare : 0;
    this.offloadRatio = remote ? remote.offloadRatio : 0;
    this.remoteLink = remote
      ? Math.min(tp * linkBandwidth(acc, remote.network), remote.network.bandwidth * tp)
      : 0;
    this.remoteLatency = remote ? remote.network.latency : 0;
    this.remoteAcc = remote ? remote.acc : acc;
    this.attentionPeakBandwidth =
      tp * acc.memoryBandwidth +
      (remote ? remote.devices * remote.acc.memoryBandwidth * remote.bandwidthShare : 0);
  }

  readonly offloadRatio: number;
  private readonly remoteLatency: number;
  private readonly remoteAcc: Accelerator;

  step(s: StepInput, out: StepCost): void {
    const m = this.m;
    nonAttentionTime(m, this.acc, this.tp, s.bLocal + s.bRemote + s.prefillTokens, this.eff, this.na);
    const local = attentionTime(m, this.acc, this.tp, s.ctxLocal, this.eff);
    let remote = 0;
    let net = 0;
    if (s.bRemote > 0) {
      remote = attentionTime(
        m,
        this.remoteAcc,
        this.remoteDevices,
        s.ctxRemote,
        this.eff,
        this.remoteBandwidthShare,
      );
      net =
        (transferBytesPerTokenLayer(m) * s.bRemote * m.layers) / this.remoteLink +
        2 * m.layers * this.remoteLatency;
    }
    const attention = Math.max(local, remote + net);
    const prefillAttn = prefillAttentionTime(m, this.acc, this.tp, s.prefillWork, this.eff);
    const tokens = s.bLocal + s.bRemote + s.prefillTokens;
    const gemmPrefillShare = tokens > 0 ? s.prefillTokens / tokens : 0;
    out.time = this.na.total + attention + prefillAttn;
    out.model = this.na.total * (1 - gemmPrefillShare);
    out.prefill = this.na.total * gemmPrefillShare + prefillAttn;
    out.attention = attention - (remote + net > local ? net : 0);
    out.network = remote + net > local ? net : 0;
    out.limiter =
      remote + net > local && net > remote ? "network" : classify(this.na, attention, prefillAttn);
  }
}

/**
 * Lamina DOP (a, b): n micro-batches over n−1 model replicas of a/(n−1) devices each, sharing
 * b head-partitioned attention devices. The cycle in which every micro-batch advances one token
 * lasts the longest of: one micro-batch's dependency chain (model → network → attention → network
 * per layer), each replica's share of model work, the attention workers' total work, the links' traffic.
 */
export class LaminaInstance implements DecodeInstanceModel {
  readonly localCapacity: number;
  readonly remoteCapacity = 0;
  readonly offloadRatio = 0;
  readonly modelPeakFlops: number;
  readonly attentionPeakBandwidth: number;
  readonly replicas: number;
  readonly tp: number;
  /** >1 when KV heads do not divide among attention workers (request-level split, imbalanced). */
  readonly attentionImbalance: number;
  private readonly na: NonAttentionTime = { compute: 0, memory: 0, comm: 0, overhead: 0, total: 0 };
  private readonly link: number;
  private readonly modelLink: number;
  private readonly attLink: number;
  /** The busiest replica's slices over an even share (1 when the rotation divides evenly). */
  private readonly busiestShare: number;

  constructor(
    private readonly m: SimModel,
    private readonly modelAcc: Accelerator,
    private readonly attAcc: Accelerator,
    a: number,
    private readonly b: number,
    readonly microBatches: number,
    private readonly net: Network,
    private readonly eff: Efficiency,
    readonly maxBatch: number,
  ) {
    if (microBatches < 2) throw new ConfigError(`lamina: micro-batches must be ≥ 2 (got ${microBatches})`);
    this.replicas = microBatches - 1;
    if (a % this.replicas !== 0) {
      throw new ConfigError(
        `lamina: ${a} model devices do not split into ${this.replicas} replicas (n = ${microBatches})`,
      );
    }
    this.tp = a / this.replicas;
    requireFit(m, modelAcc, this.tp, eff, `lamina model replica (${this.tp}×${modelAcc.name})`);
    this.localCapacity = kvCapacityTokens(m, usableBytes(attAcc, b, eff));
    this.attentionImbalance = m.kvHeads % b === 0 ? 1 : 1.15;
    this.modelPeakFlops = a * modelAcc.flops;
    this.attentionPeakBandwidth = b * attAcc.memoryBandwidth;
    this.modelLink = this.tp * linkBandwidth(modelAcc, net);
    this.attLink = b * linkBandwidth(attAcc, net);
    this.link = Math.min(this.modelLink, this.attLink);
    const slices = m.layers + 1;
    const perReplica = slicesPerReplica(microBatches, slices, this.replicas);
    this.busiestShare = (Math.max(...perReplica) * this.replicas) / (microBatches * slices);
  }

  step(s: StepInput, out: StepCost): void {
    const m = this.m;
    const n = this.microBatches;
    const r = this.replicas;
    const bm = s.bLocal / n;
    let tm = 0;
    let ta = 0;
    let tx = 0;
    let bytes = 0;
    if (s.bLocal > 0) {
      nonAttentionTime(m, this.modelAcc, this.tp, bm, this.eff, this.na);
      tm = this.na.total;
      ta =
        attentionTime(m, this.attAcc, this.b, s.ctxLocal / n, this.eff) * this.attentionImbalance +
        m.layers * this.eff.layerOverhead;
      bytes = transferBytesPerTokenLayer(m) * bm * m.layers;
      tx = bytes / this.link + 2 * m.layers * this.net.latency;
    }
    let prefill = 0;
    let kvShip = 0;
    if (s.prefillTokens > 0) {
      prefill = prefillTime(m, this.modelAcc, this.tp, s.prefillTokens, 0, this.eff);
      prefill += prefillAttentionTime(m, this.modelAcc, this.tp, s.prefillWork, this.eff);
      kvShip = (s.prefillTokens * kvBytesPerToken(m)) / this.link;
    }
    const chain = tm + ta + tx;
    // Each replica runs the slices the rotation gives it (the runtime's rule); the busiest sets the pace.
    const modelBusy = (this.busiestShare * n * tm) / r + prefill;
    const attBusy = n * ta;
    const netBusy = Math.max((n * bytes) / 2 / r / this.modelLink, (n * bytes) / 2 / this.attLink) + kvShip;
    const time = Math.max(chain, modelBusy, attBusy, netBusy);
    out.time = time;
    out.model = tm;
    out.attention = ta;
    out.network = tx;
    out.prefill = prefill;
    if (time === modelBusy) {
      out.limiter =
        prefill > (n * tm) / r
          ? "prefill"
          : this.na.compute > this.na.memory
            ? "model-compute"
            : "model-bandwidth";
    } else if (time === attBusy) out.limiter = "attention-bandwidth";
    else if (time === netBusy) out.limiter = "network";
    else out.limiter = "latency";
  }
}

/** A prefill instance: whole prompts batched, at `computeShare` of the devices' compute. */
export class PrefillServer implements PrefillServerModel {
  constructor(
    private readonly m: SimModel,
    private readonly acc: Accelerator,
    private readonly tp: number,
    private readonly eff: Efficiency,
    private readonly computeShare: number,
  ) {
    requireFit(m, acc, tp, eff, "prefill instance");
  }

  time(tokens: number, work: number): number {
    return prefillTime(this.m, this.acc, this.tp, tokens, work, this.eff, this.computeShare);
  }
}

/** Adrenaline's remote executor resources, per decode instance. */
export function adrenalineRemote(
  m: SimModel,
  prefillAcc: Accelerator,
  prefillTp: number,
  prefillInstances: number,
  decodeInstances: number,
  prefillShare: number,
  prefillBatchTokens: number,
  eff: Efficiency,
): { devices: number; capacityTokens: number; bandwidthShare: number } {
  const devices = (prefillTp * prefillInstances) / decodeInstances;
  // Each prefill instance keeps its weights and room for the KV of one prefill batch in flight.
  const free =
    usableBytes(prefillAcc, prefillTp * prefillInstances, eff) -
    prefillInstances * (m.weightBytes + prefillBatchTokens * kvBytesPerToken(m));
  return {
    devices,
    capacityTokens: kvCapacityTokens(m, Math.max(0, free) / decodeInstances),
    bandwidthShare: bandwidthShareOfSms(1 - prefillShare),
  };
}
