import { quantRowBytes } from "../model/gguf-dequant.js";
import {
  allocSharedBytes,
  floatTensor,
  isQuantTensor,
  type QuantType,
  setLineGap,
  type Tensor,
} from "../model/tensor.js";
import type {
  AttentionArgs,
  KernelBackend,
  KvData,
  KvLayerCache,
  MoeRouteArgs,
  PreparedExperts,
  PreparedWeight,
} from "./backend.js";
import { dtypeCode, kvDtypeCode, type NativeAddon, QUANT_CODE } from "./native-addon.js";
import { NativeExperts, NativeQuantExperts, NativeQuantWeight, NativeWeight } from "./native-weights.js";

/**
 * Packed copies by the stored bytes they were made from, so executors that prepare the same loaded
 * model in one process (PD's decode and prefill executors, the engines of a test) share one.
 */
const packedCopies = new WeakMap<Uint8Array, Uint8Array>();

/** The fast path: every method is one call into the addon, which checks its arguments. */
export class NativeBackend implements KernelBackend {
  readonly name = "native";
  private weightPacking = true;
  /** The packed copies this backend's weights use, and their bytes (what describe() reports). */
  private readonly packed = new WeakSet<Uint8Array>();
  private packedBytes = 0;

  constructor(private readonly addon: NativeAddon) {
    // From now on shared storage (weights, KV caches) starts on cache lines: a 64-byte load of a
    // row no longer straddles two (docs/BENCHMARKS.md, "Weights on cache lines").
    setLineGap((view) => addon.lineGap(view));
  }

  describe(): string {
    const i = this.addon.info();
    const dot = i.tiles
      ? ", bf16 products through vdpbf16ps, batches and bf16 prompt attention through AMX tiles"
      : i.bf16Dot
        ? ", bf16 products through vdpbf16ps"
        : "";
    const ahead = i.readAhead ? ", float weights and KV rows asked for ahead" : "";
    const packed =
      this.packedBytes > 0
        ? `, ${(this.packedBytes / 2 ** 20).toFixed(1)} MiB of 32-value block weights (Q8_0, Q4_0/1, Q5_0/1, IQ4_NL) also packed 16 rows a vector for decode (--no-weight-packing: as stored only)`
        : "";
    return `native ${i.variant} (${i.reason}${dot}${ahead}), ${i.threads} thread${i.threads === 1 ? "" : "s"}${packed}`;
  }

  setThreads(n: number): void {
    this.addon.setThreads(n);
  }

  /**
   * Whether prompt runs take the tiled attention kernel where this variant has one (on by
   * default; off for benchmarks comparing it with the per-token kernel).
   */
  setPromptTiles(on: boolean): void {
    this.addon.setPromptTiles(on);
  }

  /**
   * Whether the streaming kernels (decode attention on float caches, products of up to 8 tokens on
   * float weights) ask for their rows ahead in software: forced on or off, or (null) what this CPU
   * gains by (Intel's: on). Process-wide; for benchmarks' A/B runs.
   */
  setReadAhead(on: boolean | null): void {
    this.addon.setReadAhead(on);
  }

  /** Switches this thread's addon instance to another compiled variant (for tests and benchmarks). */
  selectVariant(name: string): void {
    this.addon.selectVariant(name);
  }

  info(): ReturnType<NativeAddon["info"]> {
    return this.addon.info();
  }

  /** Sums x by streaming it through every thread (the memory-bandwidth yardstick for benchmarks). */
  streamRead(x: Float32Array): number {
    return this.addon.streamRead(x);
  }

  /** Flops of a pure FMA loop on every thread (the arithmetic yardstick for benchmarks). */
  fmaPeak(rounds: number): number {
    return this.addon.fmaPeak(rounds);
  }

  /**
   * Flops of a pure bf16 dot-product loop (vdpbf16ps) on every thread, the yardstick of the bf16
   * products in the avx512bf16 variant; 0 for a variant without the instruction.
   */
  bf16DotPeak(rounds: number): number {
    return this.addon.bf16DotPeak(rounds);
  }

  /**
   * Flops of a pure AMX tile loop (tdpbf16ps) on every thread, the yardstick of the batched bf16
   * products in the amxbf16 variant; 0 for a variant without tiles.
   */
  tilePeak(rounds: number): number {
    return this.addon.tilePeak(rounds);
  }

  /**
   * Integer operations (a multiply-add two) of a pure byte-product loop on every thread (vpdpbusd
   * where the CPU has VNNI at the variant's width, else vpmaddubsw and vpmaddwd), the yardstick of
   * an int8 cache's prompt tiles; 0 on the portable build.
   */
  byteDotPeak(rounds: number): number {
    return this.addon.byteDotPeak(rounds);
  }

  adviseHugePages(x: KvData): number {
    return this.addon.adviseHugePages(x);
  }

  populatePages(x: KvData, byteOffset: number, byteLength: number): number {
    return this.addon.populatePages(x, byteOffset, byteLength);
  }

  /** The quantized products' variant and the ones this CPU can run. */
  quantInfo(): ReturnType<NativeAddon["quantInfo"]> {
    return this.addon.quantInfo();
  }

  /** Pins the quantized products to one variant (null: follow the addon's variant). */
  selectQuantVariant(name: string | null): void {
    this.addon.selectQuantVariant(name);
  }

  prepareWeight(w: Tensor): PreparedWeight {
    if (w.shape.length !== 2) throw new TypeError(`prepareWeight: ${w.name} must be 2-D, got [${w.shape}]`);
    const [rows, cols] = w.shape as [number, number];
    if (isQuantTensor(w)) {
      let bytes: number;
      try {
        bytes = rows * quantRowBytes(w.dtype, cols);
      } catch (e) {
        throw new TypeError(`prepareWeight: ${w.name}: ${(e as Error).message}`);
      }
      if (w.data.length < bytes)
        throw new TypeError(`prepareWeight: ${w.name} has ${w.data.length} bytes, needs ${bytes}`);
      return new NativeQuantWeight(rows, cols, w.dtype, w.data, this.packedCopy(w.data, w.dtype, rows, cols));
    }
    if (w.data.length < rows * cols)
      throw new TypeError(`prepareWeight: ${w.name} has ${w.data.length} elements, needs ${rows * cols}`);
    return new NativeWeight(rows, cols, w.dtype, w.data);
  }

  /**
   * Whether weights prepared from now on get a packed copy where the variant has the 16-row path
   * (on by default; `--no-weight-packing`, and prefill-only processes, turn it off).
   */
  setWeightPacking(on: boolean): void {
    this.weightPacking = on;
  }

  /** `data` packed for the variant's 16-row path, if it has one for the format (else undefined). */
  private packedCopy(data: Uint8Array, dtype: QuantType, rows: number, cols: number): Uint8Array | undefined {
    if (!this.weightPacking) return undefined;
    const code = QUANT_CODE[dtype];
    const bytes = this.addon.quantPackedBytes(code, rows, cols);
    if (bytes === 0) return undefined;
    let packed = packedCopies.get(data);
    if (packed?.byteLength !== bytes) {
      packed = allocSharedBytes(bytes);
      // Huge pages: a fifth of the faults' cost when packing, and fewer TLB misses when read.
      this.addon.adviseHugePages(packed);
      this.addon.quantPack(packed, data, code, rows, cols);
      packedCopies.set(data, packed);
    }
    if (!this.packed.has(packed)) {
      this.packed.add(packed);
      this.packedBytes += bytes;
    }
    return packed;
  }

  matmul(out: Float32Array, x: Float32Array, w: PreparedWeight, nTokens: number, bias?: Float32Array): void {
    if (w instanceof NativeQuantWeight) {
      this.addon.quantMatmul(out, x, w.data, w.code, w.rows, w.cols, nTokens, bias, w.packed);
    } else {
      if (!(w instanceof NativeWeight))
        throw new TypeError("matmul: w was not prepared by the native backend");
      this.addon.matmul(out, x, w.data, w.code, w.rows, w.cols, nTokens, bias);
    }
  }

  prepareExperts(ws: readonly Tensor[]): PreparedExperts {
    if (ws.some((w) => isQuantTensor(w))) return this.prepareQuantExperts(ws);
    const members = ws.map((w) => this.prepareWeight(floatTensor(w, "prepareExperts")) as NativeWeight);
    const first = members[0];
    if (!first) throw new TypeError("prepareExperts: no experts");
    for (const [i, m] of members.entries()) {
      if (m.rows !== first.rows || m.cols !== first.cols || m.dtype !== first.dtype)
        throw new TypeError(
          `prepareExperts: ${ws[i]!.name} is [${m.rows}, ${m.cols}] ${m.dtype}, expert 0 is [${first.rows}, ${first.cols}] ${first.dtype}`,
        );
    }
    const data = members.map((m) => m.data);
    return new NativeExperts(members.length, first.rows, first.cols, first.dtype, data, this.addon);
  }

  /**
   * Quantized experts (a GGUF mixture) as one buffer, as llama.cpp stacks them: the loader's stack
   * itself when the experts are consecutive views of it, else a copy.
   */
  private prepareQuantExperts(ws: readonly Tensor[]): PreparedExperts {
    const members = ws.map((w) => this.prepareWeight(w));
    const first = members[0];
    if (!(first instanceof NativeQuantWeight))
      throw new TypeError("prepareExperts: no experts, or expert 0 is not quantized");
    for (const [i, m] of members.entries()) {
      if (
        !(m instanceof NativeQuantWeight) ||
        m.rows !== first.rows ||
        m.cols !== first.cols ||
        m.dtype !== first.dtype
      ) {
        const what =
          m instanceof NativeQuantWeight ? `[${m.rows}, ${m.cols}] ${m.dtype}` : "not in a block format";
        throw new TypeError(
          `prepareExperts: ${ws[i]!.name} is ${what}, expert 0 is [${first.rows}, ${first.cols}] ${first.dtype}`,
        );
      }
    }
    const bytes = quantRowBytes(first.dtype, first.cols) * first.rows;
    const datas = members.map((m) => (m as NativeQuantWeight).data);
    // Experts loaded from a GGUF stack are consecutive views of one buffer: used in place.
    const inPlace = datas.every(
      (d, e) => d.buffer === datas[0]!.buffer && d.byteOffset === datas[0]!.byteOffset + e * bytes,
    );
    if (inPlace) {
      const view = new Uint8Array(datas[0]!.buffer, datas[0]!.byteOffset, bytes * members.length);
      return new NativeQuantExperts(members.length, first.rows, first.cols, first.dtype, view);
    }
    const data = allocSharedBytes(bytes * members.length);
    for (const [e, d] of datas.entries()) data.set(d.subarray(0, bytes), e * bytes);
    return new NativeQuantExperts(members.length, first.rows, first.cols, first.dtype, data);
  }

  moeRoute(a: MoeRouteArgs): void {
    this.addon.moeRoute(
      a.logits,
      a.nTokens,
      a.nExperts,
      a.topK,
      a.normalizeTopK,
      a.slotWeight,
      a.slotRow,
      a.rowToken,
      a.expertStart,
      a.selectionBias,
      a.sigmoid ?? false,
      a.scale ?? 1,
    );
  }

  gatherRows(out: Float32Array, x: Float32Array, rows: Int32Array, nRows: number, dim: number): void {
    this.addon.gatherRows(out, x, rows, nRows, dim);
  }

  groupedMatmul(out: Float32Array, x: Float32Array, w: PreparedExperts, expertStart: Int32Array): void {
    if (w instanceof NativeQuantExperts) {
      this.addon.quantGroupedMatmul(out, x, w.data, w.code, w.rows, w.cols, w.count, expertStart);
      return;
    }
    if (!(w instanceof NativeExperts))
      throw new TypeError("groupedMatmul: w was not prepared by the native backend");
    this.addon.groupedMatmul(out, x, w.handle, expertStart);
  }

  moeCombine(
    out: Float32Array,
    y: Float32Array,
    slotRow: Int32Array,
    slotWeight: Float32Array,
    nTokens: number,
    topK: number,
    dim: number,
  ): void {
    this.addon.moeCombine(out, y, slotRow, slotWeight, nTokens, topK, dim);
  }

  embedding(out: Float32Array, table: Tensor, tokens: Int32Array, nTokens: number): void {
    if (table.shape.length !== 2) throw new TypeError(`embedding: ${table.name} must be 2-D`);
    const [vocab, dim] = table.shape as [number, number];
    if (isQuantTensor(table)) {
      this.addon.quantEmbedding(out, table.data, QUANT_CODE[table.dtype], vocab, dim, tokens, nTokens);
    } else {
      this.addon.embedding(out, table.data, dtypeCode(table.dtype, "embedding"), vocab, dim, tokens, nTokens);
    }
  }

  rmsnorm(
    out: Float32Array,
    x: Float32Array,
    weight: Float32Array,
    nTokens: number,
    dim: number,
    eps: number,
  ): void {
    this.addon.rmsnorm(out, x, weight, nTokens, dim, eps);
  }

  rope(
    x: Float32Array,
    positions: Int32Array,
    nTokens: number,
    nHeads: number,
    headDim: number,
    cos: Float32Array,
    sin: Float32Array,
    rotaryDim = headDim,
  ): void {
    this.addon.rope(x, positions, nTokens, nHeads, headDim, cos, sin, rotaryDim);
  }

  siluMul(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
    this.addon.siluMul(out, gate, up, n);
  }

  expertBias(
    out: Float32Array,
    bias: Float32Array,
    expertStart: Int32Array,
    nExperts: number,
    width: number,
  ): void {
    this.addon.expertBias(out, bias, expertStart, nExperts, width);
  }

  swigluClamped(
    out: Float32Array,
    gate: Float32Array,
    up: Float32Array,
    n: number,
    alpha: number,
    limit: number,
  ): void {
    this.addon.swigluClamped(out, gate, up, n, alpha, limit);
  }

  add(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void {
    this.addon.add(out, a, b, n);
  }

  geluMul(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
    this.addon.geluMul(out, gate, up, n);
  }

  softcap(out: Float32Array, x: Float32Array, cap: number, n: number): void {
    this.addon.softcap(out, x, cap, n);
  }

  scale(out: Float32Array, x: Float32Array, factor: number, n: number): void {
    this.addon.scale(out, x, factor, n);
  }

  sigmoidGate(out: Float32Array, x: Float32Array, gate: Float32Array, rows: number, width: number): void {
    this.addon.sigmoidGate(out, x, gate, rows, width);
  }

  softmax(x: Float32Array, nRows: number, dim: number): void {
    this.addon.softmax(x, x, nRows, dim, false);
  }

  rowSoftmax(out: Float32Array, x: Float32Array, off: number, n: number, scale: number): void {
    this.addon.rowSoftmax(out, x, off, n, scale);
  }

  argmax(x: Float32Array, off: number, n: number): number {
    return this.addon.argmax(x, off, n);
  }

  drawIndex(p: Float32Array, n: number, u: number): number {
    return this.addon.drawIndex(p, n, u);
  }

  topK(x: Float32Array, off: number, n: number, k: number, idx: Int32Array): number {
    return this.addon.topK(x, off, n, k, idx);
  }

  nucleusCandidates(p: Float32Array, n: number, topP: number, idx: Int32Array): number {
    return this.addon.nucleusCandidates(p, n, topP, idx);
  }

  logSoftmax(out: Float32Array, x: Float32Array, nRows: number, dim: number): void {
    this.addon.softmax(out, x, nRows, dim, true);
  }

  kvWrite(cache: KvLayerCache, k: Float32Array, v: Float32Array, slots: Int32Array, nTokens: number): void {
    const c = cache;
    this.addon.kvWrite(
      c.k,
      c.v,
      kvDtypeCode(c.dtype, "kvWrite"),
      c.numBlocks,
      c.blockSize,
      c.nKvHeads,
      c.headDim,
      k,
      v,
      slots,
      nTokens,
      c.kScale,
      c.vScale,
    );
  }

  attention(a: AttentionArgs): void {
    this.callAttention(this.addon.attention, a);
  }

  /**
   * The decode kernel's reads of the same call alone (every K and V row in its order, steps and
   * read-ahead; nothing computed, a.out and a.lse untouched): a benchmark's limit of the read
   * pattern. Returns the sum of the bytes read as little-endian 64-bit words, modulo 2^64 (a row's
   * last 4 bytes zero-extended where its size is not a whole number of words); an int8 cache's
   * whole groups of 4 keys and their scales. Throws for int8 where its path widens (no loads-only
   * twin: the portable build).
   */
  attentionReadPattern(a: AttentionArgs): bigint {
    return this.callAttention(this.addon.attentionReadPattern, a);
  }

  /** `f` (attention or its read pattern) on the addon with a's arguments, passed as they are: no array a call. */
  private callAttention<R>(f: (...args: Parameters<NativeAddon["attention"]>) => R, a: AttentionArgs): R {
    const c = a.cache;
    return f.call(
      this.addon,
      a.out,
      a.q,
      c.k,
      c.v,
      kvDtypeCode(c.dtype, "attention"),
      c.numBlocks,
      c.blockSize,
      c.nKvHeads,
      c.headDim,
      a.blockTables,
      a.maxBlocksPerSeq,
      a.qSeq,
      a.ctxStart,
      a.ctxEnd,
      a.nTokens,
      a.nHeads,
      a.scale,
      a.lse,
      a.softcap ?? 0,
      c.kScale,
      c.vScale,
    );
  }

  mergeAttention(
    outA: Float32Array,
    lseA: Float32Array,
    outB: Float32Array,
    lseB: Float32Array,
    nTokens: number,
    nHeads: number,
    headDim: number,
  ): void {
    this.addon.mergeAttention(outA, lseA, outB, lseB, nTokens, nHeads, headDim);
  }

  attentionSinks(
    out: Float32Array,
    lse: Float32Array,
    sinks: Float32Array,
    nTokens: number,
    nHeads: number,
    headDim: number,
  ): void {
    this.addon.attentionSinks(out, lse, sinks, nTokens, nHeads, headDim);
  }
}
