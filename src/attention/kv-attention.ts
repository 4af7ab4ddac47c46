import type { AttentionArgs, KernelBackend, KvDType, KvLayerCache } from "../kernels/backend.js";
import { allocKvLayer, kvBytesPerHeadToken } from "../kernels/kv-cache.js";
import { BlockAllocator } from "./block-allocator.js";
import { KvPagePopulator } from "./kv-pages.js";
import type { AttentionStep } from "./service.js";
import { reserveInPools, windowPoolBlocks, windowSplit } from "./window-blocks.js";

export interface KvGeometry {
  readonly numLayers: number;
  /** Query heads this instance computes (all of them, or its share under head partitioning). */
  readonly numHeads: number;
  /** KV heads this instance stores. */
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly blockSize: number;
  readonly kvDtype: KvDType;
  /** Longest sequence (tokens) a block table must cover. */
  readonly maxContext: number;
  /** Largest step, for preallocated per-step metadata. */
  readonly maxTokens: number;
  readonly maxSeqs: number;
  /** Mistral-style sliding window (keys older than this are not attended), or null. */
  readonly slidingWindow: number | null;
  /** Per layer, whether the window applies there (Gemma); absent: on every layer. */
  readonly slidingLayers?: readonly boolean[];
  /** Softmax scale; absent: 1/√headDim. */
  readonly scale?: number;
  /** Attention score soft-cap (Gemma 2); absent: none. */
  readonly softcap?: number;
  /**
   * Attention sinks (gpt-oss): [numLayers, numHeads] learned logits for the heads this instance
   * computes, each joining its head's softmax with a zero value; absent: none.
   */
  readonly sinks?: Float32Array;
}

/** Bytes one KV block takes across all layers (k and v, an int8 cache's scales included). */
export function kvBytesPerBlock(
  g: Pick<KvGeometry, "numLayers" | "numKvHeads" | "headDim" | "blockSize" | "kvDtype">,
): number {
  return g.numLayers * g.numKvHeads * g.blockSize * kvBytesPerHeadToken(g.kvDtype, g.headDim);
}

/**
 * The key ranges of a step's tokens for one kind of layer: [ctxStart, ctxEnd) in all; with early
 * q, keys cached before this step are [ctxStart, earlyEnd) and this step's own [lateStart, ctxEnd).
 */
interface KeyRanges {
  readonly ctxStart: Int32Array;
  readonly earlyEnd: Int32Array;
  readonly lateStart: Int32Array;
}

/** Per-step metadata derived from the step (slots, block tables, ranges), rebuilt at layer 0. */
interface StepMeta {
  readonly slots: Int32Array;
  readonly qSeq: Int32Array;
  readonly ctxEnd: Int32Array;
  /** Ranges of the global layers (every key) and of the window layers (keys inside the window). */
  readonly global: KeyRanges;
  readonly window: KeyRanges;
  readonly blockTables: Int32Array;
  /** Slots and block tables in the window layers' own pool (when they have one). */
  readonly windowSlots: Int32Array;
  readonly windowTables: Int32Array;
  /** Reused argument object: no allocation per layer. */
  readonly args: { -readonly [K in keyof AttentionArgs]: AttentionArgs[K] };
}

/**
 * The KV cache and attention math of one attention instance: in-process (colocated), inside an
 * attention worker process, or one shard of several. Owns the block tables; the model side only
 * names sequences and positions. With `freeWindowBlocks`, a model mixing window and global layers
 * keeps the window layers' KV in a pool of their own that holds only the blocks inside the window
 * (window-blocks.ts); `allocator` is then the global layers' pool, the one admission counts.
 */
export class KvAttention {
  readonly allocator: BlockAllocator;
  /** The window layers' own pool, or null when every layer shares `allocator`'s blocks. */
  readonly windowAllocator: BlockAllocator | null;
  readonly caches: KvLayerCache[];
  readonly maxBlocksPerSeq: number;
  /** Per micro-batch (keyed by `step.microBatch`): the metadata its step was prepared with. */
  private readonly metas = new Map<number, StepMeta>();
  /** Maps the pages of each pool's never-used blocks as reservations first reach them. */
  private readonly pages: KvPagePopulator;
  private readonly windowPages: KvPagePopulator | null;
  /** Softmax scale of every layer. */
  readonly scale: number;
  /** Per layer: whether it attends within the sliding window only. */
  private readonly windowedLayers: readonly boolean[];
  /** Per layer: its heads' attention sinks (views made once), or null without sinks. */
  private readonly layerSinks: readonly Float32Array[] | null;
  /** The log-sum-exp a full-range call needs for its sinks when the caller asks for none. */
  private readonly sinkLse: Float32Array;

  constructor(
    readonly backend: KernelBackend,
    readonly geometry: KvGeometry,
    numBlocks: number,
    freeWindowBlocks = false,
  ) {
    this.allocator = new BlockAllocator(numBlocks, geometry.blockSize);
    const windowBlocks =
      freeWindowBlocks && windowSplit(geometry) ? windowPoolBlocks(geometry, numBlocks) : 0;
    this.windowAllocator = windowBlocks > 0 ? new BlockAllocator(windowBlocks, geometry.blockSize) : null;
    this.maxBlocksPerSeq = Math.ceil(geometry.maxContext / geometry.blockSize);
    this.scale = geometry.scale ?? 1 / Math.sqrt(geometry.headDim);
    const w = geometry.slidingWindow;
    this.windowedLayers = Array.from(
      { length: geometry.numLayers },
      (_, l) => w !== null && (geometry.slidingLayers === undefined || geometry.slidingLayers[l] === true),
    );
    const sinks = geometry.sinks;
    if (sinks !== undefined && sinks.length !== geometry.numLayers * geometry.numHeads)
      throw new Error(
        `attention: ${sinks.length} attention sinks for ${geometry.numLayers} layers of ${geometry.numHeads} heads`,
      );
    const h = geometry.numHeads;
    this.layerSinks = sinks
      ? Array.from({ length: geometry.numLayers }, (_, l) => sinks.subarray(l * h, (l + 1) * h))
      : null;
    this.sinkLse = new Float32Array(sinks ? geometry.maxTokens * h : 0);
    this.caches = [];
    // LAMINA_KV_HUGE_PAGES=1 asks for huge pages on these fresh buffers: attention's scattered
    // block reads then cost far fewer TLB misses, but every first touch of a 2 MiB page faults and
    // zeroes it inside kvWrite, which costs more than it saves until the cache is warm (measured on
    // a short decode run). Off by default; a long-running server may want it.
    const huge = process.env.LAMINA_KV_HUGE_PAGES === "1";
    const advise = huge
      ? (data: Parameters<NonNullable<KernelBackend["adviseHugePages"]>>[0]) => {
          backend.adviseHugePages?.(data);
        }
      : undefined;
    for (let l = 0; l < geometry.numLayers; l++) {
      const blocks = this.inWindowPool(l) ? windowBlocks : numBlocks;
      const g = geometry;
      this.caches.push(allocKvLayer(g.kvDtype, blocks, g.blockSize, g.numKvHeads, g.headDim, advise));
    }
    const inPool = (window: boolean) => this.caches.filter((_, l) => this.inWindowPool(l) === window);
    this.pages = new KvPagePopulator(backend, inPool(false), this.allocator);
    this.windowPages = this.windowAllocator
      ? new KvPagePopulator(backend, inPool(true), this.windowAllocator)
      : null;
  }

  /** Whether layer l attends within the sliding window only. */
  windowed(l: number): boolean {
    return this.windowedLayers[l] === true;
  }

  /** Whether layer l's KV lives in the window layers' own pool. */
  private inWindowPool(l: number): boolean {
    return this.windowAllocator !== null && this.windowedLayers[l] === true;
  }

  /**
   * Grows the sequence's reservation to [0, numTokens + ahead) in the global pool and [0,
   * numTokens) in the window pool, all or nothing; in the window pool, blocks no query of the next
   * step (which ends at numTokens) can reach are freed.
   */
  reserve(seqId: number, numTokens: number, ahead = 0): boolean {
    if (!reserveInPools(this.geometry, this.allocator, this.windowAllocator, seqId, numTokens, ahead))
      return false;
    // Blocks never used before get their pages mapped here, not one fault at a time inside kvWrite.
    this.pages.cover();
    this.windowPages?.cover();
    return true;
  }

  release(seqId: number): void {
    this.allocator.release(seqId);
    this.windowAllocator?.release(seqId);
  }

  releaseAll(): void {
    for (const s of [...this.allocator.sequences()]) this.release(s);
  }

  /** Builds slots, block tables and key ranges for a step; call once per step before layer 0. */
  prepare(step: AttentionStep): void {
    const g = this.geometry;
    let meta = this.metas.get(step.microBatch);
    if (!meta) {
      const ranges = (): KeyRanges => ({
        ctxStart: new Int32Array(g.maxTokens),
        earlyEnd: new Int32Array(g.maxTokens),
        lateStart: new Int32Array(g.maxTokens),
      });
      meta = {
        slots: new Int32Array(g.maxTokens),
        qSeq: new Int32Array(g.maxTokens),
        ctxEnd: new Int32Array(g.maxTokens),
        global: ranges(),
        window: ranges(),
        blockTables: new Int32Array(g.maxSeqs * this.maxBlocksPerSeq),
        windowSlots: new Int32Array(this.windowAllocator ? g.maxTokens : 0),
        windowTables: new Int32Array(this.windowAllocator ? g.maxSeqs * this.maxBlocksPerSeq : 0),
        args: {} as StepMeta["args"],
      };
      this.metas.set(step.microBatch, meta);
    }
    const bs = g.blockSize;
    const mb = this.maxBlocksPerSeq;
    for (let s = 0; s < step.nSeqs; s++) {
      const table = this.allocator.table(step.seqIds[s]!);
      const first = step.seqStart[s]!;
      const last = step.seqStart[s + 1]!;
      const maxPos = last > first ? step.positions[last - 1]! : -1;
      if (!table || table.length * bs <= maxPos) {
        throw new Error(`attention: sequence ${step.seqIds[s]} has no KV reserved for position ${maxPos}`);
      }
      for (let b = 0; b < table.length; b++) meta.blockTables[s * mb + b] = table[b]!;
      const split = last > first ? step.positions[first]! : 0;
      for (let t = first; t < last; t++) {
        const pos = step.positions[t]!;
        meta.slots[t] = table[(pos / bs) | 0]! * bs + (pos % bs);
        meta.qSeq[t] = s;
        meta.ctxEnd[t] = pos + 1;
        setRanges(meta.global, t, 0, split);
        setRanges(meta.window, t, g.slidingWindow ? Math.max(0, pos + 1 - g.slidingWindow) : 0, split);
      }
      if (this.windowAllocator) this.prepareWindow(meta, step, s);
    }
  }

  /** Sequence s's window-pool table and its tokens' slots there; every block they read must be held. */
  private prepareWindow(meta: StepMeta, step: AttentionStep, s: number): void {
    const bs = this.geometry.blockSize;
    const mb = this.maxBlocksPerSeq;
    const table = this.windowAllocator!.table(step.seqIds[s]!)!;
    for (let b = 0; b < table.length; b++) meta.windowTables[s * mb + b] = table[b]!;
    const first = step.seqStart[s]!;
    const last = step.seqStart[s + 1]!;
    if (last > first && table.length * bs <= step.positions[last - 1]!) {
      throw new Error(
        `attention: sequence ${step.seqIds[s]}'s window pool has no block for position ${step.positions[last - 1]}`,
      );
    }
    if (last > first && table[(meta.window.ctxStart[first]! / bs) | 0]! < 0) {
      throw new Error(
        `attention: sequence ${step.seqIds[s]}'s window starts at ${meta.window.ctxStart[first]}, in a block already freed`,
      );
    }
    for (let t = first; t < last; t++) {
      const pos = step.positions[t]!;
      meta.windowSlots[t] = table[(pos / bs) | 0]! * bs + (pos % bs);
    }
  }

  /** Appends the step's k/v to `layer` and computes attention for its query tokens into `out`. */
  run(
    layer: number,
    step: AttentionStep,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse?: Float32Array,
  ): void {
    const meta = this.meta(step);
    this.backend.kvWrite(this.caches[layer]!, k, v, this.slots(meta, layer), step.nTokens);
    const l = lse ?? (this.layerSinks ? this.sinkLse : undefined);
    this.attend(meta, layer, step, q, out, this.ranges(meta, layer).ctxStart, meta.ctxEnd, l);
    this.foldSinks(layer, step, out, l);
  }

  /** Applies the layer's attention sinks to a whole key range's result (nothing without sinks). */
  private foldSinks(
    layer: number,
    step: AttentionStep,
    out: Float32Array,
    lse: Float32Array | undefined,
  ): void {
    if (!this.layerSinks || !lse) return;
    const g = this.geometry;
    this.backend.attentionSinks(out, lse, this.layerSinks[layer]!, step.nTokens, g.numHeads, g.headDim);
  }

  /**
   * Early q (Lamina §2): attention over the keys cached before this step, while this step's own
   * k/v are still on their way. Writes a partial result and its log-sum-exp for `finishLate`
   * (which folds in the attention sinks, once, after merging).
   */
  runEarly(layer: number, step: AttentionStep, q: Float32Array, out: Float32Array, lse: Float32Array): void {
    const meta = this.meta(step);
    const r = this.ranges(meta, layer);
    this.attend(meta, layer, step, q, out, r.ctxStart, r.earlyEnd, lse);
  }

  /**
   * Appends this step's k/v, attends over them into (lateOut, lateLse) and merges that into the
   * early partial (out, lse) with the (A, S) rule, leaving the full result in `out`.
   */
  finishLate(
    layer: number,
    step: AttentionStep,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse: Float32Array,
    lateOut: Float32Array,
    lateLse: Float32Array,
  ): void {
    const meta = this.meta(step);
    this.backend.kvWrite(this.caches[layer]!, k, v, this.slots(meta, layer), step.nTokens);
    this.attend(meta, layer, step, q, lateOut, this.ranges(meta, layer).lateStart, meta.ctxEnd, lateLse);
    this.backend.mergeAttention(
      out,
      lse,
      lateOut,
      lateLse,
      step.nTokens,
      this.geometry.numHeads,
      this.geometry.headDim,
    );
    this.foldSinks(layer, step, out, lse);
  }

  private slots(meta: StepMeta, layer: number): Int32Array {
    return this.inWindowPool(layer) ? meta.windowSlots : meta.slots;
  }

  private ranges(meta: StepMeta, layer: number): KeyRanges {
    return this.windowedLayers[layer] ? meta.window : meta.global;
  }

  private meta(step: AttentionStep): StepMeta {
    const meta = this.metas.get(step.microBatch);
    if (!meta) throw new Error(`attention: micro-batch ${step.microBatch} was not prepared`);
    return meta;
  }

  private attend(
    meta: StepMeta,
    layer: number,
    step: AttentionStep,
    q: Float32Array,
    out: Float32Array,
    start: Int32Array,
    end: Int32Array,
    lse: Float32Array | undefined,
  ): void {
    const a = meta.args;
    a.out = out;
    a.q = q;
    a.cache = this.caches[layer]!;
    a.blockTables = this.inWindowPool(layer) ? meta.windowTables : meta.blockTables;
    a.maxBlocksPerSeq = this.maxBlocksPerSeq;
    a.qSeq = meta.qSeq;
    a.ctxStart = start;
    a.ctxEnd = end;
    a.nTokens = step.nTokens;
    a.nHeads = this.geometry.numHeads;
    a.scale = this.scale;
    a.softcap = this.geometry.softcap ?? 0;
    a.lse = lse;
    this.backend.attention(a);
  }
}

/** Token t's keys start at `start`; those cached before the step end (and the step's own begin) at `split`. */
function setRanges(r: KeyRanges, t: number, start: number, split: number): void {
  r.ctxStart[t] = start;
  r.earlyEnd[t] = Math.max(start, split);
  r.lateStart[t] = Math.max(start, split);
}
