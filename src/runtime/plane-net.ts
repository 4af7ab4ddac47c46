import { loadNativeAddon } from "../kernels/native-addon.js";

/**
 * The model plane over TCP (native/kernels/src/plane_net.cpp): this process's copy of the plane
 * segment, linked to the other processes of the rotation. A send writes byte ranges of this copy,
 * then 32-bit stores, then a doorbell ring into the peer's copy; the peer's receiving thread applies
 * them natively (no JavaScript there), so whoever sleeps on that doorbell wakes to the data in place.
 * Peer ids: 0 the front end, 1 + r model worker r.
 */
export interface PlaneNetAddon {
  pnOpen(segment: ArrayBuffer, token: string, self: number): number;
  /** Port 0 (the default): any free port. */
  pnListen(id: number, host: string, port?: number): number;
  pnConnect(id: number, peer: number, host: string, port: number, timeoutMs: number): void;
  /** regions: [byteOffset, byteLength]…; stores: [byteOffset, value]…; guardOff/ringOff −1: none. */
  pnSend(
    id: number,
    peer: number,
    regions: Int32Array,
    nRegions: number,
    stores: Int32Array,
    nStores: number,
    guardOff: number,
    guardVal: number,
    ringOff: number,
    timeoutMs: number,
  ): void;
  pnDrop(id: number, peer: number): void;
  pnOnLoss(id: number, peer: number, off: number, val: number, ringOff: number): void;
  pnInfo(id: number): PlaneNetInfo;
  pnClose(id: number): void;
}

export interface PlaneNetInfo {
  readonly framesIn: number;
  readonly bytesIn: number;
  readonly framesOut: number;
  readonly bytesOut: number;
  /** Frames dropped by their guard (a step given up since they were sent). */
  readonly stale: number;
  readonly malformed: number;
  /** The last link that failed or broke the rules, and why. */
  readonly error: string;
  readonly linked: readonly number[];
}

/** The most regions and stores one frame carries (plane_net.h). */
export const MAX_FRAME_REGIONS = 64;
export const MAX_FRAME_STORES = 64;

export function planeNetAddon(): PlaneNetAddon {
  const { addon } = loadNativeAddon();
  const pn = addon as unknown as Partial<PlaneNetAddon>;
  if (typeof pn.pnOpen !== "function")
    throw new Error("the native kernel addon predates the model plane over TCP (rebuild it)");
  return pn as PlaneNetAddon;
}

/**
 * One frame being put together: regions of this copy, stores and a ring, sent to one peer or
 * several. Its arrays are made once and reused (nothing is allocated per frame).
 */
export class PlaneFrame {
  readonly regions = new Int32Array(2 * MAX_FRAME_REGIONS);
  readonly stores = new Int32Array(2 * MAX_FRAME_STORES);
  nRegions = 0;
  nStores = 0;
  guardOff = -1;
  guardVal = 0;
  ringOff = -1;

  reset(): this {
    this.nRegions = 0;
    this.nStores = 0;
    this.guardOff = -1;
    this.guardVal = 0;
    this.ringOff = -1;
    return this;
  }

  /** Bytes [byteOffset, byteOffset + byteLength) of the segment (empty ranges are left out). */
  region(byteOffset: number, byteLength: number): this {
    if (byteLength <= 0) return this;
    if (this.nRegions === MAX_FRAME_REGIONS) throw new Error("model plane: too many regions in one frame");
    this.regions[2 * this.nRegions] = byteOffset;
    this.regions[2 * this.nRegions + 1] = byteLength;
    this.nRegions++;
    return this;
  }

  /** The first `n` elements of a view into the segment. */
  view(v: ArrayBufferView & { readonly BYTES_PER_ELEMENT: number }, n: number): this {
    return this.region(v.byteOffset, n * v.BYTES_PER_ELEMENT);
  }

  store(byteOffset: number, value: number): this {
    if (this.nStores === MAX_FRAME_STORES) throw new Error("model plane: too many stores in one frame");
    this.stores[2 * this.nStores] = byteOffset;
    this.stores[2 * this.nStores + 1] = value;
    this.nStores++;
    return this;
  }

  guard(byteOffset: number, value: number): this {
    this.guardOff = byteOffset;
    this.guardVal = value;
    return this;
  }

  ring(byteOffset: number): this {
    this.ringOff = byteOffset;
    return this;
  }
}

/** This process's links (a thin owner of the native handle). */
export class PlaneNet {
  /** The counters as they stood when the links closed (stats are read after close too). */
  private final: PlaneNetInfo | null = null;

  private constructor(
    private readonly addon: PlaneNetAddon,
    readonly id: number,
    private readonly timeoutMs: number,
  ) {}

  static open(segment: ArrayBuffer, token: string, self: number, timeoutMs: number): PlaneNet {
    const addon = planeNetAddon();
    return new PlaneNet(addon, addon.pnOpen(segment, token, self), timeoutMs);
  }

  listen(host: string, port = 0): number {
    return this.addon.pnListen(this.id, host, port);
  }

  connect(peer: number, host: string, port: number): void {
    this.addon.pnConnect(this.id, peer, host, port, this.timeoutMs);
  }

  send(peer: number, f: PlaneFrame): void {
    this.addon.pnSend(
      this.id,
      peer,
      f.regions,
      f.nRegions,
      f.stores,
      f.nStores,
      f.guardOff,
      f.guardVal,
      f.ringOff,
      this.timeoutMs,
    );
  }

  drop(peer: number): void {
    this.addon.pnDrop(this.id, peer);
  }

  onLoss(peer: number, byteOffset: number, value: number, ringOff: number): void {
    this.addon.pnOnLoss(this.id, peer, byteOffset, value, ringOff);
  }

  info(): PlaneNetInfo {
    return this.final ?? this.addon.pnInfo(this.id);
  }

  close(): void {
    if (this.final) return;
    this.final = { ...this.addon.pnInfo(this.id), linked: [] };
    this.addon.pnClose(this.id);
  }
}
