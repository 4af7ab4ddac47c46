import { slicesPerReplica } from "../../util/rotation.js";
import { kvBytesPerToken, kvDim } from "../cost-model.js";
import {
  type BatchLoad,
  type EngineOverheads,
  HANDOFF_BYTES_PER_ELEMENT,
  type SideCost,
} from "./step-cost.js";

/** How long the engine takes to land its micro-batches, per placement (s). */
export interface PlacementCost {
  /** Micro-batches in flight; a cycle lands one of each. */
  readonly depth: number;
  /** Duration of a cycle that computes these micro-batches (one per depth slot; empty ones omitted). */
  cycle(loads: readonly BatchLoad[]): number;
}

/** Everything in one process: GEMMs, attention and host work one after the other. */
export class ColocatedCost implements PlacementCost {
  readonly depth = 1;
  constructor(
    private readonly side: SideCost,
    private readonly o: EngineOverheads,
  ) {}
  cycle(loads: readonly BatchLoad[]): number {
    let t = 0;
    for (const b of loads) {
      const s = this.side;
      t +=
        s.gemm(b.decodeRows) +
        s.prefill(b.ownPrefillTokens, b.ownPrefillWork) +
        s.attention(b.ownDecodeCtx, b.ownDecodeRows) +
        s.m.layers * this.o.layerS +
        b.seqs * this.o.tokenS;
    }
    return t;
  }
}

/**
 * Lamina's split on one host: the model side's GEMMs, then per layer q/k/v to the attention
 * workers and the output back. Depth 1 runs the chain; depth n overlaps micro-batches, so a cycle
 * lasts the longest of one chain, the model side's total and the attention side's total (the
 * simulator's LaminaInstance, with measured rates).
 */
export class AttentionWorkersCost implements PlacementCost {
  /**
   * With model worker processes: the busiest replica's share of the slices over an even share (the
   * runtime's rotation, util/rotation.ts; 1 when it divides evenly or the engine thread is the model side).
   */
  private readonly busiestShare: number;

  constructor(
    readonly depth: number,
    private readonly model: SideCost,
    private readonly attention: SideCost,
    private readonly workers: number,
    private readonly o: EngineOverheads,
    /** Model replicas the micro-batches rotate over (1: one model side, the engine thread or one model worker). */
    private readonly replicas = 1,
  ) {
    const slices = model.m.layers + 1;
    const perReplica = slicesPerReplica(depth, slices, replicas);
    this.busiestShare = (Math.max(...perReplica) * replicas) / (depth * slices);
  }
  cycle(loads: readonly BatchLoad[]): number {
    let chain = 0;
    let modelBusy = 0;
    let attBusy = 0;
    const L = this.model.m.layers;
    for (const b of loads) {
      const rows = b.decodeRows + b.ownPrefillTokens;
      const tm =
        this.model.gemm(b.decodeRows) +
        (b.ownPrefillTokens > 0 ? this.model.prefill(b.ownPrefillTokens, 0) : 0) +
        L * this.o.layerS +
        b.seqs * this.o.tokenS;
      const ta =
        this.attention.attention(b.ownDecodeCtx, b.ownDecodeRows) / this.workers +
        this.attention.prefillAttention(b.ownPrefillWork) +
        L * this.o.layerS;
      const tx = L * (2 * this.o.latencyS + this.model.layerTransfer(rows, this.o.linkBytesPerS));
      chain = Math.max(chain, tm + ta + tx);
      modelBusy += tm;
      attBusy += ta;
    }
    // Each replica runs the slices the rotation gives it, on a core of its own; the busiest sets the pace.
    const modelPace = (modelBusy * this.busiestShare) / this.replicas;
    return this.depth === 1 ? chain : Math.max(chain, modelPace, attBusy);
  }
}

/**
 * PD / Adrenaline: the decode instance runs its own rows while each prefill instance runs the step's
 * prompt chunks routed to it (their KV streamed back for kept sequences), the step waiting for both
 * (pd/pd-executor.ts). A prefill instance is one event loop: its attention executor serves the
 * offloaded rows' per-layer attention between prefill layers (prefill yields after each layer),
 * so an offloaded layer may wait for a prefill layer in progress. Simulated layer by layer.
 */
export class PdCost implements PlacementCost {
  readonly depth = 1;
  private readonly kvBytes: number;
  /** Bytes of K and V one prompt token hands back over all layers, as the prefill instance sends them. */
  private readonly handoffBytes: number;
  constructor(
    private readonly decode: SideCost,
    private readonly prefill: SideCost,
    private readonly executor: SideCost,
    private readonly o: EngineOverheads,
  ) {
    this.kvBytes = kvBytesPerToken(decode.m);
    this.handoffBytes = 2 * decode.m.layers * kvDim(decode.m) * HANDOFF_BYTES_PER_ELEMENT;
  }

  cycle(loads: readonly BatchLoad[]): number {
    let t = 0;
    for (const b of loads) t += this.step(b);
    return t;
  }

  step(b: BatchLoad): number {
    const L = this.decode.m.layers;
    const o = this.o;
    const own = b.decodeRows + b.ownPrefillTokens > 0;
    const gemmLayer = own
      ? (this.decode.gemm(b.decodeRows) + this.decode.prefill(b.ownPrefillTokens, b.ownPrefillWork)) / L +
        o.layerS
      : 0;
    const localAttLayer = this.decode.attention(b.ownDecodeCtx, b.ownDecodeRows) / L;
    let end = own ? L * (gemmLayer + localAttLayer) + b.seqs * o.tokenS : 0;
    for (const r of b.remote) {
      const pre =
        r.prefillTokens > 0
          ? this.prefill.prefill(r.prefillTokens, r.prefillWork) +
            L * o.layerS +
            this.handoff(r.streamedTokens)
          : 0;
      const attLayer =
        r.decodeRows > 0
          ? this.executor.attention(r.decodeCtx, r.decodeRows) / L +
            this.decode.layerTransfer(r.decodeRows, o.linkBytesPerS)
          : 0;
      end = Math.max(
        end,
        this.interleave(pre / L, gemmLayer, localAttLayer, attLayer, r.decodeRows > 0, b.seqs),
      );
    }
    return end;
  }

  /**
   * The prefill instance's thread after its prefill layers: with the profile's measured handoff, a
   * yield per layer and the streamed rows' K and V (as sent) at the measured rate, in series with
   * the layers (the same thread); without it, the KV's bytes at the link's bandwidth.
   */
  private handoff(streamedTokens: number): number {
    const h = this.o.kvHandoff;
    if (!h) return (streamedTokens * this.kvBytes) / this.o.linkBytesPerS;
    return this.decode.m.layers * h.layerS + (streamedTokens * this.handoffBytes) / h.bytesPerS;
  }

  /**
   * One prefill instance and the decode instance through a step: the decode side runs a layer's GEMMs,
   * sends the offloaded rows, runs its own attention and waits for theirs; the instance runs prefill
   * layers back to back and serves an attention request whenever one is waiting at a layer boundary.
   */
  private interleave(
    preLayer: number,
    gemmLayer: number,
    localAttLayer: number,
    remoteAttLayer: number,
    offloaded: boolean,
    seqs: number,
  ): number {
    const L = this.decode.m.layers;
    // Prefill instances exchange over messages, not the native data plane (placement/pd.ts).
    const lat = this.o.messageLatencyS;
    let inst = 0;
    let preLeft = preLayer > 0 ? L : 0;
    let dec = 0;
    if (offloaded) {
      for (let l = 0; l < L; l++) {
        dec += gemmLayer;
        const arrives = dec + lat;
        // Prefill layers that start before the request arrives run first (each one is not interrupted).
        while (preLeft > 0 && inst < arrives) {
          inst += preLayer;
          preLeft--;
        }
        const done = Math.max(inst, arrives) + remoteAttLayer;
        inst = done;
        dec = Math.max(dec + localAttLayer, done + lat);
      }
      dec += seqs * this.o.tokenS;
    } else dec = L * (gemmLayer + localAttLayer) + (gemmLayer > 0 ? seqs * this.o.tokenS : 0);
    inst += preLeft * preLayer;
    return Math.max(dec, preLayer > 0 ? inst + 2 * lat : 0);
  }
}
