import { newSegmentName, unlinkAtExit, unlinkSegmentName } from "../transport/shm-names.js";
import { shmNative } from "../transport/shm-native.js";
import type { BlockMirror } from "./block-mirror.js";
import type { DataPlaneAddon, ShapeArgs } from "./data-plane-native.js";
import type { SubStep } from "./sub-step.js";

/** Where a step's block tables come from: the mirror's global pool and its window pool, if any. */
export type StepTables = Pick<BlockMirror, "table"> & Partial<Pick<BlockMirror, "window">>;

/** What one link's segment must hold: its worker's share of the heads, at the engine's limits. */
export interface DataPlaneShape {
  readonly numTags: number;
  readonly maxTokens: number;
  readonly maxSeqs: number;
  readonly maxBlocksPerSeq: number;
  /** Floats per token of q and of the output (this worker's query heads × headDim). */
  readonly qWidth: number;
  /** Floats per token of k and of v (this worker's KV heads × headDim). */
  readonly kvWidth: number;
  readonly numLayers: number;
}

/** The slots a worker configured with `c` needs (both sides compute it the same way). */
export function dataPlaneShape(c: {
  maxTags: number;
  maxTokens: number;
  maxSeqs: number;
  maxContext: number;
  blockSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  numLayers: number;
}): DataPlaneShape {
  return {
    numTags: c.maxTags,
    maxTokens: c.maxTokens,
    maxSeqs: c.maxSeqs,
    maxBlocksPerSeq: Math.ceil(c.maxContext / c.blockSize),
    qWidth: c.numHeads * c.headDim,
    kvWidth: c.numKvHeads * c.headDim,
    numLayers: c.numLayers,
  };
}

/** The shape as the native calls take it. */
export function shapeArgs(s: DataPlaneShape): ShapeArgs {
  return [s.numTags, s.maxTokens, s.maxSeqs, s.maxBlocksPerSeq, s.qWidth, s.kvWidth, s.numLayers];
}

/**
 * The model side of one attention worker's native data plane: a shared-memory segment made
 * here and named in CONFIGURE, and the native client that posts a micro-batch's step, q and k/v
 * into its slots and takes the OUT replies. Every call on the per-layer path is one native call
 * that copies the worker's rows and head columns straight between the engine's activation
 * buffers and the slots; block tables come from the model side's exact mirror of the worker's.
 */
export class DataPlaneLink {
  private closed = false;
  /** Scratch for a step's block tables, [maxSeqs × maxBlocksPerSeq]; refilled every step. */
  private readonly tables: Int32Array;
  /** The same for the window pool's tables (where the worker keeps one). */
  private readonly windowTables: Int32Array;

  private constructor(
    private readonly addon: DataPlaneAddon,
    readonly name: string,
    readonly id: number,
    readonly shape: DataPlaneShape,
    /** Held so the mapping lives as long as the client (the addon holds a reference too); null over TCP. */
    private readonly segment: ArrayBuffer | null,
    /** Whether this side made the segment's name (and removes it). */
    private readonly ownsName = true,
    /** Where model workers connect to the same TCP data plane (with their own peer ids); null over shared memory. */
    readonly tcp: { readonly host: string; readonly port: number; readonly token: string } | null = null,
  ) {
    this.tables = new Int32Array(shape.maxSeqs * shape.maxBlocksPerSeq);
    this.windowTables = new Int32Array(shape.maxSeqs * shape.maxBlocksPerSeq);
  }

  /** Creates and maps a segment for `shape` and opens its client; the name goes into CONFIGURE. */
  static create(addon: DataPlaneAddon, shape: DataPlaneShape, spinUs: number): DataPlaneLink {
    const bytes = addon.dpSegmentBytes(...shapeArgs(shape));
    const name = newSegmentName();
    const segment = shmNative().create(name, bytes);
    unlinkAtExit(name);
    try {
      const id = addon.dpClientOpen(segment, ...shapeArgs(shape), spinUs);
      return new DataPlaneLink(addon, name, id, shape, segment);
    } catch (e) {
      unlinkSegmentName(name);
      throw e;
    }
  }

  /**
   * The TCP form, for a worker on another host: connects to the port the worker opened for this
   * connection and proves the token it gave over the control channel.
   */
  static connectTcp(
    addon: DataPlaneAddon,
    host: string,
    port: number,
    token: string,
    shape: DataPlaneShape,
    spinUs: number,
    timeoutMs: number,
    /** 0: the front end; 1 + r: model worker r, posting the layers of the slices it runs. */
    peer = 0,
  ): DataPlaneLink {
    const id = addon.dpTcpClientOpen(host, port, token, ...shapeArgs(shape), spinUs, timeoutMs, peer);
    return new DataPlaneLink(addon, `tcp ${host}:${port}`, id, shape, null, false, { host, port, token });
  }

  /**
   * Another model-side process's client on a segment the front end made (a model worker): the
   * counters live in the segment, so it carries on a micro-batch another process posted.
   */
  static attach(addon: DataPlaneAddon, name: string, shape: DataPlaneShape, spinUs: number): DataPlaneLink {
    const segment = shmNative().open(name);
    const id = addon.dpClientAttach(segment, ...shapeArgs(shape), spinUs);
    return new DataPlaneLink(addon, name, id, shape, segment, false);
  }

  /** Whether the link is a shared-memory segment (which other processes can map by its name). */
  get shared(): boolean {
    return this.segment !== null;
  }

  /** See RemoteAttentionService.settleForModelWorkers (over TCP the worker settles it and answers). */
  settle(tag: number, timeoutMs: number): boolean {
    return this.closed || this.addon.dpSettleTag(this.id, tag, timeoutMs);
  }

  /** Forgets OUTs received and never taken (TCP; after the front end settled a failed step). */
  resync(): void {
    if (!this.closed) this.addon.dpResync(this.id);
  }

  /** Once the worker has mapped the segment (or refused it) the name is not needed any more. */
  unlinkName(): void {
    if (this.segment && this.ownsName) unlinkSegmentName(this.name);
  }

  /** The step's sequences this worker serves, with their block tables (both pools) from the mirror. */
  postStep(tag: number, sub: SubStep, mirror: StepTables, timeoutMs: number): void {
    const mb = this.shape.maxBlocksPerSeq;
    const win = mirror.window ?? null;
    for (let s = 0; s < sub.nSeqs; s++) {
      const seqId = sub.seqIds[s]!;
      const table = mirror.table(seqId);
      if (!table) throw new Error(`attention: sequence ${seqId} has no KV reserved`);
      copyTable(this.tables, s * mb, table);
      if (win) copyTable(this.windowTables, s * mb, win.table(seqId)!);
    }
    this.addon.dpPostStep(
      this.id,
      tag,
      sub.nTokens,
      sub.nSeqs,
      sub.seqStart,
      sub.positions,
      this.tables,
      win ? this.windowTables : null,
      timeoutMs,
    );
  }

  /** q of the worker's rows (sub.rows of `q`, rows of srcWidth) and head columns from colOff. */
  postQ(
    tag: number,
    layer: number,
    q: Float32Array,
    sub: SubStep,
    srcWidth: number,
    colOff: number,
    timeoutMs: number,
  ): void {
    this.addon.dpPostQ(this.id, tag, layer, q, sub.rows, sub.nTokens, srcWidth, colOff, timeoutMs);
  }

  postKv(
    tag: number,
    layer: number,
    k: Float32Array,
    v: Float32Array,
    sub: SubStep,
    srcWidth: number,
    colOff: number,
    timeoutMs: number,
  ): void {
    this.addon.dpPostKv(this.id, tag, layer, k, v, sub.rows, sub.nTokens, srcWidth, colOff, timeoutMs, 0);
  }

  /**
   * postKv, then (shared memory only) the OUT taken into `out`'s rows at dstWidth/outColOff as
   * take() does, if it comes within the spin budget: its compute µs, or -1 with nothing taken.
   * One native call for a layer's KV and output where the engine waits for one worker.
   */
  postKvTake(
    tag: number,
    layer: number,
    k: Float32Array,
    v: Float32Array,
    sub: SubStep,
    srcWidth: number,
    colOff: number,
    timeoutMs: number,
    out: Float32Array,
    dstWidth: number,
    outColOff: number,
  ): number {
    return this.addon.dpPostKvTake(
      this.id,
      tag,
      layer,
      k,
      v,
      sub.rows,
      sub.nTokens,
      srcWidth,
      colOff,
      timeoutMs,
      out,
      dstWidth,
      outColOff,
    );
  }

  /** Whether this link's exchange is in a shared-memory segment (else over TCP). */
  get shm(): boolean {
    return this.segment !== null;
  }

  ready(tag: number): boolean {
    return this.addon.dpReady(this.id, tag);
  }

  /** Scatters the OUT into the worker's rows and columns of `out`; returns the compute µs reported. */
  take(tag: number, out: Float32Array, sub: SubStep, dstWidth: number, colOff: number): number {
    return this.addon.dpTake(this.id, tag, out, sub.rows, sub.nTokens, dstWidth, colOff);
  }

  /** The worker's failure as the segment reports it (or its pid gone), else "". */
  failure(): string {
    return this.closed ? "data plane closed" : this.addon.dpClientInfo(this.id).failure;
  }

  spinSeconds(): number {
    return this.closed ? 0 : this.addon.dpClientInfo(this.id).spinSeconds;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unlinkName();
    this.addon.dpClientClose(this.id);
  }
}

/** A sequence's table into its row of a step's tables (entries past it are never read). */
function copyTable(dst: Int32Array, row: number, table: readonly number[]): void {
  for (let b = 0; b < table.length; b++) dst[row + b] = table[b]!;
}
