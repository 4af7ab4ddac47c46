/**
 * The native data plane's functions on the kernel addon (native/kernels/src/dataplane_*.cpp):
 * the per-layer exchange with an attention worker over a shared-memory segment, written and read
 * by native code on both sides. JavaScript only sizes and maps the segment and calls these.
 */

import type { KvData } from "../kernels/backend.js";
import { loadNativeAddon } from "../kernels/native-addon.js";

export interface DataPlaneWorkerInfo {
  readonly state: "not attached" | "running" | "failed" | "stopped";
  readonly error: string;
  readonly spinSeconds: number;
  readonly computeSeconds: number;
  readonly steps: number;
  readonly layers: number;
}

/** A segment's geometry as the native calls take it (see DataPlaneShape and shapeArgs). */
export type ShapeArgs = [
  numTags: number,
  maxTokens: number,
  maxSeqs: number,
  maxBlocksPerSeq: number,
  qWidth: number,
  kvWidth: number,
  numLayers: number,
];

/** A worker loop's KV cache and settings as the native calls take them (see cacheArgs). */
export type CacheArgs = [
  kCaches: readonly KvData[],
  vCaches: readonly KvData[],
  dtype: number,
  numBlocks: number,
  /** The window layers' own pool (window-blocks.ts), 0: none; a windowed layer's cache then holds this many. */
  windowBlocks: number,
  blockSize: number,
  nKvHeads: number,
  headDim: number,
  nHeads: number,
  maxContext: number,
  /** Per layer, given once: sliding window (0: none), softmax scale, score soft-cap (0: none). */
  windows: Int32Array,
  scales: Float32Array,
  softcaps: Float32Array,
  threads: number,
  spinUs: number,
  /** An int8 cache's per-layer scales (KvLayerCache.kScale, vScale); empty for the float types. */
  kScales: readonly Float32Array[],
  vScales: readonly Float32Array[],
  /** Attention sinks, [layers, nHeads] logits of this worker's heads; empty: none. */
  sinks: Float32Array,
];

/** A KV posting's arguments, as dpPostKv and dpPostKvTake take them first. */
export type KvPostArgs = [
  id: number,
  tag: number,
  layer: number,
  k: Float32Array,
  v: Float32Array,
  rows: Int32Array | null,
  nRows: number,
  srcWidth: number,
  colOff: number,
  timeoutMs: number,
];

export interface DataPlaneAddon {
  dpSegmentBytes(...shape: ShapeArgs): number;
  dpClientOpen(segment: ArrayBuffer, ...rest: [...ShapeArgs, spinUs: number]): number;
  /** A segment another model-side process made, whose header matches the shape. */
  dpClientAttach(segment: ArrayBuffer, ...rest: [...ShapeArgs, spinUs: number]): number;
  /** Waits until the worker answered every posting of the micro-batch; marks its replies taken. */
  dpSettleTag(id: number, tag: number, timeoutMs: number): boolean;
  dpClientClose(id: number): void;
  dpPostStep(
    id: number,
    tag: number,
    nTokens: number,
    nSeqs: number,
    seqStart: Int32Array,
    positions: Int32Array,
    tables: Int32Array,
    /** The window pool's tables, for a worker that keeps one; else null. */
    windowTables: Int32Array | null,
    timeoutMs: number,
  ): void;
  dpPostQ(
    id: number,
    tag: number,
    layer: number,
    q: Float32Array,
    rows: Int32Array | null,
    nRows: number,
    srcWidth: number,
    colOff: number,
    timeoutMs: number,
  ): void;
  dpPostKv(
    ...args: [
      ...KvPostArgs,
      /** TCP: the peer the OUT goes to (1 + r for model worker r; default 0, the front end). */
      replyTo?: number,
    ]
  ): void;
  /**
   * Shared memory: dpPostKv, then the OUT taken into `out` (as dpTake) once it is ready within
   * the client's spin budget: its compute µs, or -1 with nothing taken (wait and take as usual).
   */
  dpPostKvTake(...args: [...KvPostArgs, out: Float32Array, dstWidth: number, outColOff: number]): number;
  /** TCP: forgets replies received and never taken (after a failed step was settled). */
  dpResync(id: number): void;
  dpReady(id: number, tag: number): boolean;
  dpTake(
    id: number,
    tag: number,
    out: Float32Array,
    rows: Int32Array | null,
    nRows: number,
    dstWidth: number,
    colOff: number,
  ): number;
  /** Index into ids of a client with a ready reply; -1 timed out; -(2 + i): client i's worker failed. */
  dpWait(ids: Int32Array, n: number, timeoutMs: number, tagMask?: number): number;
  dpClientInfo(id: number): { spinSeconds: number; failure: string };
  dpServe(segment: ArrayBuffer, ...cache: CacheArgs): number;
  /** peer: 0 for the front end, 1 + r for model worker r (each on a socket of its own). */
  dpTcpClientOpen(
    host: string,
    port: number,
    token: string,
    ...rest: [...ShapeArgs, spinUs: number, timeoutMs: number, peer?: number]
  ): number;
  dpServeTcp(
    host: string,
    token: string,
    ...rest: [...ShapeArgs, ...CacheArgs]
  ): { id: number; port: number };
  dpStop(id: number): void;
  dpWorkerInfo(id: number): DataPlaneWorkerInfo;
  /** Spins on core `cpu` (−1: any) for `ms` and reports the time the core was taken away (benchmarks). */
  dpHostJitter(ms: number, cpu: number): HostJitter;
}

/** The host's noise floor on one core: steps of over 2 µs between clock reads of a spinning loop. */
export interface HostJitter {
  readonly seconds: number;
  readonly gaps: number;
  readonly lostSeconds: number;
  readonly longestUs: number;
  /** Whether the probe ran on the core asked for. */
  readonly pinned: boolean;
}

/** The layout version both sides must agree on (native/kernels/src/dataplane_layout.h). */
export const DATA_PLANE_LAYOUT = 4;

/** This thread's addon with the data-plane functions, or why there is none. */
export function dataPlaneAddon(): DataPlaneAddon | string {
  try {
    const { addon } = loadNativeAddon();
    const dp = addon as unknown as Partial<DataPlaneAddon>;
    if (typeof dp.dpServe !== "function")
      return "the native kernel addon predates the data plane (rebuild it)";
    return dp as DataPlaneAddon;
  } catch (e) {
    return (e as Error).message;
  }
}
