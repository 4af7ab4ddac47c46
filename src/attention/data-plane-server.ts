import { kvDtypeCode } from "../kernels/native-addon.js";
import { shmNative } from "../transport/shm-native.js";
import { type DataPlaneShape, shapeArgs } from "./data-plane-link.js";
import type { CacheArgs, DataPlaneAddon, DataPlaneWorkerInfo } from "./data-plane-native.js";
import type { KvAttention } from "./kv-attention.js";

export interface DataPlaneServerOptions {
  /** Threads of the loop's own kernel pool; 0: as many as this process's kernels use. */
  readonly threads: number;
  /** Spin budget before the loop sleeps on the segment's doorbell. */
  readonly spinUs: number;
}

/** The cache and loop settings as the native calls take them, per-layer attention settings included. */
function cacheArgs(kv: KvAttention, o: DataPlaneServerOptions): CacheArgs {
  const g = kv.geometry;
  const windows = Int32Array.from({ length: g.numLayers }, (_, l) => (kv.windowed(l) ? g.slidingWindow! : 0));
  return [
    kv.caches.map((c) => c.k),
    kv.caches.map((c) => c.v),
    kvDtypeCode(g.kvDtype, "data plane"),
    kv.allocator.numBlocks,
    kv.windowAllocator?.numBlocks ?? 0,
    g.blockSize,
    g.numKvHeads,
    g.headDim,
    g.numHeads,
    g.maxContext,
    windows,
    new Float32Array(g.numLayers).fill(kv.scale),
    new Float32Array(g.numLayers).fill(g.softcap ?? 0),
    o.threads,
    o.spinUs,
    kv.caches.flatMap((c) => (c.kScale ? [c.kScale] : [])),
    kv.caches.flatMap((c) => (c.vScale ? [c.vScale] : [])),
    g.sinks ?? new Float32Array(0),
  ];
}

/**
 * The attention worker's native data-plane loop for one connection: maps the segment the model
 * side named in CONFIGURE and starts a native thread that runs this connection's attention on
 * `kv`'s caches. The KV cache must outlive the loop: `stop()` joins the thread before the
 * session drops the cache.
 */
export class DataPlaneServer {
  private stopped = false;

  private constructor(
    private readonly addon: DataPlaneAddon,
    private readonly id: number,
    readonly segmentName: string,
  ) {}

  /** Throws (with the reason) if the segment cannot be mapped or does not match the cache. */
  static start(
    addon: DataPlaneAddon,
    name: string,
    kv: KvAttention,
    o: DataPlaneServerOptions,
    /** Other model-side processes will map it too: its maker removes the name. */
    keepName = false,
  ): DataPlaneServer {
    const segment = shmNative().open(name);
    // Mapped: the name has done its job, whichever side removes it first.
    if (!keepName) shmNative().unlink(name);
    const id = addon.dpServe(segment, ...cacheArgs(kv, o));
    return new DataPlaneServer(addon, id, name);
  }

  /**
   * The TCP form: listens on `host` (the control connection's local address) for the one model
   * side that proves `token`, and bridges its frames to a loop on a private segment of `shape`.
   */
  static startTcp(
    addon: DataPlaneAddon,
    host: string,
    token: string,
    shape: DataPlaneShape,
    kv: KvAttention,
    o: DataPlaneServerOptions,
  ): { server: DataPlaneServer; port: number } {
    const { id, port } = addon.dpServeTcp(host, token, ...shapeArgs(shape), ...cacheArgs(kv, o));
    return { server: new DataPlaneServer(addon, id, `tcp ${host}:${port}`), port };
  }

  info(): DataPlaneWorkerInfo {
    return this.addon.dpWorkerInfo(this.id);
  }

  /** Ends the loop (joins its thread); idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.addon.dpStop(this.id);
  }
}
