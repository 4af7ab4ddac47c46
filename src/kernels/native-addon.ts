// The native kernel addon as JavaScript sees it: its exports' types, the codes its functions take
// for dtypes and block formats, and where the addon file is and how it loads.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { DType, QuantType, TensorData } from "../model/tensor.js";
import type { KvData, KvDType } from "./backend.js";

/** The addon's exports (native/kernels/src/addon.cpp); positional arguments, dtype as a code. */
export interface NativeAddon {
  info(): {
    variant: string;
    reason: string;
    threads: number;
    cpu: string[];
    supported: string[];
    /** Products on bf16 weights use vdpbf16ps and round their activations to bf16 first. */
    bf16Dot: boolean;
    /**
     * Batched products on bf16 weights, and prompt attention on bf16 caches (head_dim a multiple of
     * 32), go through AMX tiles (the same rounding as bf16Dot).
     */
    tiles: boolean;
    /**
     * The smallest batch whose products on bf16 weights take the packed paths: 9, or where the
     * tiles take smaller batches (amxbf16), 6.
     */
    bf16PackedFrom: number;
    /**
     * Grouped-query attention on a bf16 cache goes through vdpbf16ps (queries and probabilities
     * rounded to bf16): avx512bf16 only, not amxbf16, whose CPUs issue it at half the FMA's rate.
     */
    bf16DotAttention: boolean;
    /**
     * Variants that stand in for another CPU, for tests and benchmarks; selectable, never chosen:
     * amxbf16-emulated (AMX tiles in software), avx512-novnni and avx2-novnni (those variants as on
     * a CPU without AVX-512 VNNI or AVX-VNNI).
     */
    emulated: string[];
    /**
     * The path int8 KV attention takes here: "avx512vnni" or "avxvnni" dot products, "maddubs"
     * (byte products without VNNI), else "widen".
     */
    int8Attention: string;
    /**
     * Whether the streaming kernels (decode attention on float caches, products of up to 8 tokens
     * on float weights) ask for their rows ahead in software now (by default on Intel CPUs;
     * setReadAhead forces it).
     */
    readAhead: boolean;
    /**
     * Whether decode attention through vdpbf16ps (grouped queries on a bf16 cache, where
     * bf16DotAttention) asks for its KV rows ahead: by default on every CPU; setReadAhead forces it
     * with readAhead.
     */
    readAheadBf16Dot: boolean;
  };
  selectVariant(name: string): void;
  setThreads(n: number): void;
  setPromptTiles(on: boolean): void;
  setReadAhead(on: boolean | null): void;
  matmul(
    out: Float32Array,
    x: Float32Array,
    w: TensorData,
    dtype: number,
    rows: number,
    cols: number,
    nTokens: number,
    bias: Float32Array | undefined,
  ): void;
  embedding(
    out: Float32Array,
    table: TensorData,
    dtype: number,
    vocab: number,
    dim: number,
    tokens: Int32Array,
    nTokens: number,
  ): void;
  rmsnorm(
    out: Float32Array,
    x: Float32Array,
    w: Float32Array,
    nTokens: number,
    dim: number,
    eps: number,
  ): void;
  rope(
    x: Float32Array,
    positions: Int32Array,
    nTokens: number,
    nHeads: number,
    headDim: number,
    cos: Float32Array,
    sin: Float32Array,
    rotaryDim?: number,
  ): void;
  siluMul(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void;
  expertBias(
    out: Float32Array,
    bias: Float32Array,
    expertStart: Int32Array,
    nExperts: number,
    width: number,
  ): void;
  swigluClamped(
    out: Float32Array,
    gate: Float32Array,
    up: Float32Array,
    n: number,
    alpha: number,
    limit: number,
  ): void;
  add(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void;
  geluMul(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void;
  softcap(out: Float32Array, x: Float32Array, cap: number, n: number): void;
  scale(out: Float32Array, x: Float32Array, factor: number, n: number): void;
  sigmoidGate(out: Float32Array, x: Float32Array, gate: Float32Array, rows: number, width: number): void;
  softmax(out: Float32Array, x: Float32Array, nRows: number, dim: number, log: boolean): void;
  rowSoftmax(out: Float32Array, x: Float32Array, off: number, n: number, scale: number): void;
  argmax(x: Float32Array, off: number, n: number): number;
  drawIndex(p: Float32Array, n: number, u: number): number;
  topK(x: Float32Array, off: number, n: number, k: number, idx: Int32Array): number;
  nucleusCandidates(p: Float32Array, n: number, topP: number, idx: Int32Array): number;
  kvWrite(
    kc: KvData,
    vc: KvData,
    dtype: number,
    numBlocks: number,
    blockSize: number,
    nKvHeads: number,
    headDim: number,
    k: Float32Array,
    v: Float32Array,
    slots: Int32Array,
    nTokens: number,
    kScale?: Float32Array,
    vScale?: Float32Array,
  ): void;
  attention(
    out: Float32Array,
    q: Float32Array,
    kc: KvData,
    vc: KvData,
    dtype: number,
    numBlocks: number,
    blockSize: number,
    nKvHeads: number,
    headDim: number,
    blockTables: Int32Array,
    maxBlocksPerSeq: number,
    qSeq: Int32Array,
    ctxStart: Int32Array,
    ctxEnd: Int32Array,
    nTokens: number,
    nHeads: number,
    scale: number,
    lse: Float32Array | undefined,
    /** Score soft-cap (0: none). */
    softcap: number,
    kScale?: Float32Array,
    vScale?: Float32Array,
  ): void;
  /** attention's arguments; the reads alone, nothing written: the sum of the 64-bit words read (mod 2^64). */
  attentionReadPattern(...args: Parameters<NativeAddon["attention"]>): bigint;
  mergeAttention(
    outA: Float32Array,
    lseA: Float32Array,
    outB: Float32Array,
    lseB: Float32Array,
    nTokens: number,
    nHeads: number,
    headDim: number,
  ): void;
  attentionSinks(
    out: Float32Array,
    lse: Float32Array,
    sinks: Float32Array,
    nTokens: number,
    nHeads: number,
    headDim: number,
  ): void;
  /** An opaque set of expert weights (raw pointers into `ws`, which the caller keeps alive). */
  expertSet(ws: readonly TensorData[], dtype: number, rows: number, cols: number): object;
  groupedMatmul(out: Float32Array, x: Float32Array, set: object, expertStart: Int32Array): void;
  moeRoute(
    logits: Float32Array,
    nTokens: number,
    nExperts: number,
    topK: number,
    normalizeTopK: boolean,
    slotWeight: Float32Array,
    slotRow: Int32Array,
    rowToken: Int32Array,
    expertStart: Int32Array,
    selectionBias?: Float32Array,
    sigmoid?: boolean,
    scale?: number,
  ): void;
  gatherRows(out: Float32Array, x: Float32Array, rows: Int32Array, nRows: number, dim: number): void;
  moeCombine(
    out: Float32Array,
    y: Float32Array,
    slotRow: Int32Array,
    slotWeight: Float32Array,
    nTokens: number,
    topK: number,
    dim: number,
  ): void;
  /** Sums x with every pool thread: a pure streaming read, timed by benchmarks as the bandwidth limit. */
  streamRead(x: Float32Array): number;
  /** Runs rounds of independent FMA chains on every pool thread; returns the flops done. */
  fmaPeak(rounds: number): number;
  /** As fmaPeak with bf16 dot-product chains (vdpbf16ps); 0 where the variant has none. */
  bf16DotPeak(rounds: number): number;
  /** As fmaPeak with AMX tile dot-product chains (tdpbf16ps); 0 where the variant has no tiles. */
  tilePeak(rounds: number): number;
  /** As fmaPeak with byte-product chains (vpdpbusd, else vpmaddubsw; a multiply-add two operations); 0 on the portable build. */
  byteDotPeak(rounds: number): number;
  adviseHugePages(x: KvData | Uint8Array): number;
  /** Faults in the whole pages of x's bytes [byteOffset, byteOffset + byteLength), contents unchanged; returns the bytes populated. */
  populatePages(x: KvData, byteOffset: number, byteLength: number): number;
  /** The CPUs this process may run on, ascending ([] where the OS cannot say). */
  allowedCpus(): number[];
  /** Binds every thread of this process (and those they start) to `cpus`; returns the threads bound. */
  bindProcessToCpus(cpus: number[]): number;
  /** How long this process's data-plane waits spin on their core alone before offering it to other threads (µs). */
  setPureSpin(us: number): void;
  /** The data-plane waits' pure spin now (µs; 20 unless setPureSpin changed it). */
  pureSpin(): number;
  /** Counts a batch of token events the engine thread posts to the HTTP thread; returns the count. */
  outputPosted(): number;
  /** The HTTP thread has sent the batches up to `n` (a count from outputPosted; an older mark than the last is ignored). */
  outputSent(n: number): void;
  /** Whether a posted batch has not been marked sent. */
  outputWaiting(): boolean;
  /** Bytes from x's first element to the next 64-byte boundary. */
  lineGap(x: Uint8Array): number;
  /** out[n, rows] = x · Wᵀ (+ bias) on a weight in a block format (qtype: QUANT_CODE). */
  quantMatmul(
    out: Float32Array,
    x: Float32Array,
    w: Uint8Array,
    qtype: number,
    rows: number,
    cols: number,
    nTokens: number,
    bias: Float32Array | undefined,
    packed?: Uint8Array,
  ): void;
  /** Bytes quantPack writes for this matrix where the addon's variant (not a pinned one) runs it packed, else 0. */
  quantPackedBytes(qtype: number, rows: number, cols: number): number;
  /** w's whole groups of 16 rows packed with the rows in a vector's lanes (quant_pack.h) into dst. */
  quantPack(dst: Uint8Array, w: Uint8Array, qtype: number, rows: number, cols: number): void;
  quantGroupedMatmul(
    out: Float32Array,
    x: Float32Array,
    w: Uint8Array,
    qtype: number,
    rows: number,
    cols: number,
    experts: number,
    expertStart: Int32Array,
  ): void;
  quantEmbedding(
    out: Float32Array,
    table: Uint8Array,
    qtype: number,
    vocab: number,
    dim: number,
    tokens: Int32Array,
    nTokens: number,
  ): void;
  /** The quantized products' variant (it follows the addon's unless pinned) and those this CPU runs. */
  quantInfo(): { variant: string; pinned: boolean; packedRows: boolean; supported: string[] };
  /** Pins the quantized products to a variant (tests, benchmarks); null follows the addon's again. */
  selectQuantVariant(name: string | null): void;
}

const DTYPE_CODE: Record<DType, number> = { f32: 0, f16: 1, bf16: 2 };

/** The addon's code for a dtype (the native functions take dtypes as numbers). */
export function dtypeCode(dtype: DType, what: string): number {
  const code = DTYPE_CODE[dtype];
  if (code === undefined) throw new TypeError(`${what}: unknown dtype ${String(dtype)}`);
  return code;
}

const KV_DTYPE_CODE: Record<KvDType, number> = { ...DTYPE_CODE, int8: 3 };

/** The addon's code for a KV cache dtype (int8 is a KV dtype only). */
export function kvDtypeCode(dtype: KvDType, what: string): number {
  const code = KV_DTYPE_CODE[dtype];
  if (code === undefined) throw new TypeError(`${what}: unknown KV dtype ${String(dtype)}`);
  return code;
}

/** The package root: the nearest folder above this file whose package.json is ours (src/ or dist/src/). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = path.join(dir, "package.json");
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, "utf8")) as { name?: string }).name === "lamina-ts") return dir;
      } catch {}
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error("cannot find the lamina-ts package root above the kernel module");
    dir = up;
  }
}

/**
 * The addon file: LAMINA_KERNEL_ADDON when set (a build elsewhere, e.g. to benchmark a variant of
 * the kernels against the installed one), else the package's own build.
 */
export function nativeAddonPath(): string {
  const override = process.env.LAMINA_KERNEL_ADDON;
  if (override !== undefined && override !== "") return path.resolve(override);
  return path.join(packageRoot(), "native", "kernels", "build", "Release", "lamina_kernels.node");
}

/**
 * Loads the addon for this thread (it is context-aware: each worker thread gets its own instance,
 * thread pool and variant). Throws with the reason if it is missing or cannot be loaded.
 */
export function loadNativeAddon(): { addon: NativeAddon; path: string } {
  const p = nativeAddonPath();
  if (!existsSync(p))
    throw new Error(`the native kernel addon is not built (${p} is missing; run npm run build:native)`);
  const require = createRequire(import.meta.url);
  return { addon: require(p) as NativeAddon, path: p };
}

/** The addon's codes for the block formats (quant_kernels.h). */
export const QUANT_CODE: Record<QuantType, number> = {
  q8_0: 0,
  q4_0: 1,
  q4_k: 2,
  q6_k: 3,
  q4_1: 4,
  q5_0: 5,
  q5_1: 6,
  q5_k: 7,
  q3_k: 8,
  q2_k: 9,
  iq4_nl: 10,
  iq4_xs: 11,
  mxfp4: 12,
};
