import { kvBytesPerToken, matmulParams, queryDim, transferBytesPerTokenLayer } from "../cost-model.js";
import type { SimModel } from "../types.js";
import type { SideRates } from "./rates.js";

/** What one micro-batch asks of each side (built from its chunks by run.ts). */
export interface BatchLoad {
  /** Sequences in the micro-batch (per-sequence host work: scheduling, sampling, events). */
  seqs: number;
  /** Decode rows: their GEMMs run on the engine (model side) whether their KV is its own or offloaded. */
  decodeRows: number;
  /** Decode rows whose KV the engine (or its attention workers) holds, and the KV tokens they read. */
  ownDecodeRows: number;
  ownDecodeCtx: number;
  /** Prompt-chunk tokens the engine computes itself, and their Σ 2·c·(o + c/2) (c tokens at offset o). */
  ownPrefillTokens: number;
  ownPrefillWork: number;
  /** Per prefill instance (PD/Adrenaline): offloaded decode rows and the prompt chunks it computes. */
  readonly remote: RemoteLoad[];
}

export interface RemoteLoad {
  decodeRows: number;
  decodeCtx: number;
  prefillTokens: number;
  prefillWork: number;
  /** Prompt tokens whose KV streams back to the decode instance (kept sequences). */
  streamedTokens: number;
}

/** Fixed costs of the engine measured by the profile (s) and the link between processes. */
export interface EngineOverheads {
  readonly layerS: number;
  readonly tokenS: number;
  /** One-way latency of the native data plane's per-layer exchange (attention workers). */
  readonly latencyS: number;
  /** One-way latency of a message over the shm channel (PD/Adrenaline's per-layer exchange). */
  readonly messageLatencyS: number;
  readonly linkBytesPerS: number;
  /**
   * A PD prefill instance's cost after each prefill layer (profile transport.kvHandoff): its yield,
   * and the KV rows handed back to the decode instance (bytes as sent) at their measured rate.
   */
  readonly kvHandoff?: { readonly layerS: number; readonly bytesPerS: number };
}

/** Bytes per element of the K and V rows a prefill instance hands back (pd/prefill-server.ts sends f32). */
export const HANDOFF_BYTES_PER_ELEMENT = 4;

/**
 * Step-time pieces on one side, the simulator's roofline (cost-model.ts) with measured rates:
 * GEMMs max(2·N·(B + h)/peak, (weights + activations)/bandwidth), attention bandwidth-bound,
 * prompt chunks compute-bound at the prefill rate.
 */
export class SideCost {
  private readonly flopsPerToken: number;
  private readonly kvBytes: number;
  /** GEMM rate of prompt chunks apart from their attention (gemmRate), or null: one rate for both. */
  private readonly prefillGemmRate: number | null;
  constructor(
    readonly m: SimModel,
    readonly r: SideRates,
  ) {
    this.flopsPerToken = 2 * matmulParams(m);
    this.kvBytes = kvBytesPerToken(m);
    this.prefillGemmRate = SideCost.gemmRate(m, r, this.flopsPerToken, this.kvBytes);
  }

  /** GEMMs of `tokens` decode tokens (a few per sequence). */
  gemm(tokens: number): number {
    if (tokens <= 0) return 0;
    const curve = this.r.gemmCurve;
    if (curve && curve.length >= 2) return this.measuredGemm(tokens, curve);
    const m = this.m;
    const compute = (this.flopsPerToken * (tokens + this.r.halfBatch)) / this.r.peakFlops;
    const memory =
      (m.weightBytes + 2 * m.bytesPerElement * tokens * m.hidden * m.layers) / this.r.weightBandwidth;
    return Math.max(compute, memory);
  }

  /**
   * GEMMs from the measured pass rates: the time of a pass at each measured batch (this model's
   * FLOPs at the rate measured there), linear between them, the first point's time below it (a
   * pass is never cheaper than streaming the weights once), and beyond the last point that time
   * plus the last segment's cost per token.
   */
  private measuredGemm(tokens: number, curve: NonNullable<SideRates["gemmCurve"]>): number {
    const time = (i: number) => (this.flopsPerToken * curve[i]!.batch) / curve[i]!.flops;
    if (tokens <= curve[0]!.batch) return time(0);
    let i = 1;
    while (i < curve.length - 1 && curve[i]!.batch < tokens) i++;
    const b0 = curve[i - 1]!.batch;
    const b1 = curve[i]!.batch;
    const slope = (time(i) - time(i - 1)) / (b1 - b0);
    return tokens <= b1 ? time(i - 1) + slope * (tokens - b0) : time(i) + Math.max(0, slope) * (tokens - b1);
  }

  /** GEMMs and causal attention of prompt chunks: `tokens` in all, `work` as in BatchLoad. */
  prefill(tokens: number, work: number): number {
    if (tokens <= 0) return 0;
    if (this.prefillGemmRate !== null)
      return Math.max(
        (this.flopsPerToken * tokens) / this.prefillGemmRate + this.contextReads(work),
        this.gemm(1),
      );
    const flops = this.flopsPerToken * tokens + 2 * this.m.layers * queryDim(this.m) * work;
    return Math.max(flops / this.r.prefillFlops, this.gemm(1));
  }

  /** Causal attention of prompt chunks alone (`work` as in BatchLoad). */
  prefillAttention(work: number): number {
    if (work <= 0) return 0;
    if (this.prefillGemmRate !== null) return this.contextReads(work);
    return (2 * this.m.layers * queryDim(this.m) * work) / this.r.prefillFlops;
  }

  /**
   * The engine's prompt-chunk attention: in proportion to its (query, key) pairs (work / 2 of them,
   * each a key's K and V rows), at the measured context rate (else the decode attention's read rate).
   */
  private contextReads(work: number): number {
    return ((work / 2) * this.kvBytes) / (this.r.prefillContextBandwidth ?? this.r.attentionBandwidth);
  }

  /**
   * The prompt chunk's GEMM rate, where the profile gives the chunk its prefill rate was measured
   * on: that chunk's time less its attention (contextReads of n tokens from an empty context, work
   * n²), the chunk's GEMM FLOPs over what is left. Null without the chunk's size, or where attention
   * would take nearly all of it (the rates do not fit this model): then one rate covers both.
   */
  private static gemmRate(m: SimModel, r: SideRates, flopsPerToken: number, kvBytes: number): number | null {
    const n = r.prefillChunkTokens;
    if (n === undefined) return null;
    const chunkS = (flopsPerToken * n + 2 * m.layers * queryDim(m) * n * n) / r.prefillFlops;
    const gemmS = chunkS - ((n * n) / 2) * (kvBytes / (r.prefillContextBandwidth ?? r.attentionBandwidth));
    return gemmS > 0.2 * chunkS ? (flopsPerToken * n) / gemmS : null;
  }

  /** Decode attention of `seqs` sequences over `ctx` cached tokens in all (all layers). */
  attention(ctx: number, seqs: number): number {
    return seqs * this.m.layers * this.r.attentionSeqS + (ctx * this.kvBytes) / this.r.attentionBandwidth;
  }

  /** Bytes of q, k, v and the output for `rows` rows of one layer, over the link. */
  layerTransfer(rows: number, link: number): number {
    return (transferBytesPerTokenLayer(this.m) * rows) / link;
  }
}
