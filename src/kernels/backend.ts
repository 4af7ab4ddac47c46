import type { DType, Tensor, TensorData, WeightDType } from "../model/tensor.js";

/**
 * The one kernel interface. Every placement (colocated, attention workers, offloading) runs its
 * math through it. Implementations: the native Node-API addon (the fast path) and the plain
 * TypeScript reference (the test oracle and the fallback).
 *
 * Conventions:
 * - Activations are fp32, row-major, one row per token: `x[t * width + i]`.
 * - Calls are synchronous and write into caller-provided buffers: nothing is allocated per call,
 *   so the decode loop allocates nothing per token. Run them off the HTTP event loop.
 * - `out` may alias an input only where a method says so.
 */
export interface KernelBackend {
  readonly name: string;
  /** A one-line description of the variant in use (e.g. "native avx512 (bf16 dot), 2 threads"). */
  describe(): string;
  setThreads(n: number): void;

  /**
   * Prepares a [rows=out, cols=in] weight for `matmul` (the backend may prepack it into panels).
   * Called once at load; the result is opaque and reused for every step.
   */
  prepareWeight(w: Tensor): PreparedWeight;

  /**
   * Optional: asks the OS to back a large, not yet touched buffer (a KV cache) with huge pages, so
   * scattered block reads cost fewer TLB misses. Returns the bytes advised (0: nothing done).
   */
  adviseHugePages?(x: KvData): number;

  /**
   * Optional: faults in the whole pages of x's bytes [byteOffset, byteOffset + byteLength) without
   * changing them, so a fresh KV cache's first writes find their pages mapped. Returns the bytes
   * populated (0: nothing done).
   */
  populatePages?(x: KvData, byteOffset: number, byteLength: number): number;

  /** out[n, rows] = x[n, cols] · Wᵀ (+ bias[rows]). */
  matmul(out: Float32Array, x: Float32Array, w: PreparedWeight, nTokens: number, bias?: Float32Array): void;

  /** out[t, :] = row tokens[t] of an embedding table [vocab, dim] in its stored dtype. */
  embedding(out: Float32Array, table: Tensor, tokens: Int32Array, nTokens: number): void;

  /** out = x / rms(x) * weight, per row of `dim`; out may alias x. */
  rmsnorm(
    out: Float32Array,
    x: Float32Array,
    weight: Float32Array,
    nTokens: number,
    dim: number,
    eps: number,
  ): void;

  /**
   * Rotate-half (GPT-NeoX / Hugging Face) RoPE in place on x[n, nHeads * headDim], token t at
   * positions[t]. cos/sin are tables [maxPos, rotaryDim / 2] built by `buildRopeTables`. Only the
   * first `rotaryDim` dims of each head rotate (pairs i and i + rotaryDim / 2; default: all of them,
   * partial rotary embeddings as Phi-4-mini's otherwise), the rest pass through.
   */
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

  /**
   * Prepares the experts of one mixture-of-experts projection (expert e: a [rows, cols] weight;
   * all of one shape and dtype) for `groupedMatmul`. Called once at load.
   */
  prepareExperts(ws: readonly Tensor[]): PreparedExperts;

  /**
   * Top-k routing of a mixture of experts, and the grouping of its (token, slot) pairs by expert;
   * see MoeRouteArgs.
   */
  moeRoute(args: MoeRouteArgs): void;

  /** out[r, :] = x[rows[r], :] for r < nRows (rows of `dim`); no aliasing. */
  gatherRows(out: Float32Array, x: Float32Array, rows: Int32Array, nRows: number, dim: number): void;

  /**
   * For each expert e: rows [expertStart[e], expertStart[e + 1]) of out = the same rows of
   * x · W_eᵀ, so each expert's weights are read once for all its rows.
   */
  groupedMatmul(out: Float32Array, x: Float32Array, w: PreparedExperts, expertStart: Int32Array): void;

  /**
   * out[t, :] = Σ_j slotWeight[t·topK + j] · y[slotRow[t·topK + j], :], summed over j in slot
   * order (so a token's result does not depend on what it is batched with); no aliasing.
   */
  moeCombine(
    out: Float32Array,
    y: Float32Array,
    slotRow: Int32Array,
    slotWeight: Float32Array,
    nTokens: number,
    topK: number,
    dim: number,
  ): void;

  /**
   * For each expert e: rows [expertStart[e], expertStart[e + 1]) of out ([rows, width]) += row e
   * of bias ([nExperts, width]): gpt-oss's expert biases after a grouped product.
   */
  expertBias(
    out: Float32Array,
    bias: Float32Array,
    expertStart: Int32Array,
    nExperts: number,
    width: number,
  ): void;

  /**
   * gpt-oss's clamped SwiGLU for i < n: g = min(gate[i], limit), u = clamp(up[i], ±limit),
   * out[i] = (u + 1) · g · σ(alpha · g); out may alias gate.
   */
  swigluClamped(
    out: Float32Array,
    gate: Float32Array,
    up: Float32Array,
    n: number,
    alpha: number,
    limit: number,
  ): void;

  /** out[i] = silu(gate[i]) * up[i] for i < n; out may alias gate. */
  siluMul(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void;

  /** out[i] = gelu_tanh(gate[i]) * up[i] for i < n (GeGLU, transformers' gelu_pytorch_tanh); out may alias gate. */
  geluMul(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void;

  /** out[i] = cap · tanh(x[i] / cap) for i < n (cap > 0); out may alias x. */
  softcap(out: Float32Array, x: Float32Array, cap: number, n: number): void;

  /** out[i] = x[i] · factor for i < n; out may alias x. */
  scale(out: Float32Array, x: Float32Array, factor: number, n: number): void;

  /** out[r, :] = sigmoid(gate[r]) · x[r, :] over rows of `width` (Qwen2-MoE's shared-expert gate); out may alias x. */
  sigmoidGate(out: Float32Array, x: Float32Array, gate: Float32Array, rows: number, width: number): void;

  /** out[i] = a[i] + b[i] for i < n; out may alias a. */
  add(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void;

  /** In place softmax over each row of `dim`. */
  softmax(x: Float32Array, nRows: number, dim: number): void;

  /** out = log_softmax(x) per row; out may alias x. */
  logSoftmax(out: Float32Array, x: Float32Array, nRows: number, dim: number): void;

  /**
   * The sampler's rows (engine/sampler.ts), one row on the calling thread. rowSoftmax: out[0, n) =
   * softmax(scale · x[off, off + n)), scale > 0 (a temperature's reciprocal). argmax: the first
   * index of the largest of x[off, off + n), as a scan keeping the first value greater than the best
   * finds it (a NaN never wins). drawIndex: with u in [0, 1), the first j whose running sum of
   * p[0..j] exceeds u · Σ p[0, n), n − 1 if rounding leaves none. topK: the k largest of
   * x[off, off + n) (ties: the lower index), their indices in [0, n) in idx[0, k), unordered;
   * returns k (n where k ≥ n). nucleusCandidates: top-p's candidates among the probabilities
   * p[0, n), a superset of its nucleus (every index whose probability lies in a bucket of float bits
   * at or above the one where the mass from the top reaches topP, one lower for rounding), in index
   * order in idx[0, m); returns m.
   */
  rowSoftmax(out: Float32Array, x: Float32Array, off: number, n: number, scale: number): void;
  argmax(x: Float32Array, off: number, n: number): number;
  drawIndex(p: Float32Array, n: number, u: number): number;
  topK(x: Float32Array, off: number, n: number, k: number, idx: Int32Array): number;
  nucleusCandidates(p: Float32Array, n: number, topP: number, idx: Int32Array): number;

  /** Writes the new tokens' k/v rows [n, nKvHeads * headDim] into the paged cache at `slots`. */
  kvWrite(cache: KvLayerCache, k: Float32Array, v: Float32Array, slots: Int32Array, nTokens: number): void;

  /** Paged attention for a ragged batch of query tokens; see AttentionArgs. */
  attention(args: AttentionArgs): void;

  /**
   * Merges partial attention results (A, lse) of disjoint key ranges into (outA, lseA):
   * A = (A1·e^{lse1} + A2·e^{lse2}) / (e^{lse1} + e^{lse2}), computed with the max subtracted.
   * Shapes: out [nTokens, nHeads * headDim], lse [nTokens, nHeads]. A row with lse = -Infinity
   * (no keys) contributes nothing.
   */
  mergeAttention(
    outA: Float32Array,
    lseA: Float32Array,
    outB: Float32Array,
    lseB: Float32Array,
    nTokens: number,
    nHeads: number,
    headDim: number,
  ): void;

  /**
   * Folds attention sinks into finished attention rows (gpt-oss): each head's learned logit
   * `sinks[h]` joins the softmax as one more key whose value is zero, so
   * out ← out · e^lse / (e^lse + e^sink) and lse ← log(e^lse + e^sink). A row with no keys
   * (lse = -Infinity) becomes zeros. Call it once on the whole key range's result.
   */
  attentionSinks(
    out: Float32Array,
    lse: Float32Array,
    sinks: Float32Array,
    nTokens: number,
    nHeads: number,
    headDim: number,
  ): void;
}

/** Opaque handle from `prepareWeight`. */
export interface PreparedWeight {
  readonly rows: number;
  readonly cols: number;
  /** As stored: a float type, or a block format (the product then quantizes x per 32 values). */
  readonly dtype: WeightDType;
}

/** Opaque handle from `prepareExperts`: `count` experts of [rows, cols]. */
export interface PreparedExperts {
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  /** A float type, or a block format (a GGUF model's experts stay quantized). */
  readonly dtype: WeightDType;
}

/**
 * Mixture-of-experts routing. Each token's experts are the topK largest of its router logits
 * [nTokens, nExperts] (a tie goes to the lower expert index), in slot order from the largest.
 * A slot's weight is its expert's softmax probability over all experts, or, with normalizeTopK,
 * over the chosen ones only (the same as rescaling the chosen probabilities to sum to 1).
 * With selectionBias the experts are instead the topK largest of probability + bias (ties again to
 * the lower index), and the weights the same probabilities of the experts so chosen. With sigmoid,
 * an expert's score is the sigmoid of its logit in place of its softmax probability (DeepSeek V3,
 * GLM-4.5), chosen by score + bias (or the score alone). Every weight is then multiplied by scale.
 * The nTokens·topK (token, slot) pairs are then laid out grouped by expert, in token order
 * within an expert: the pair's row in that layout is slotRow[t·topK + j], the token of row r is
 * rowToken[r], and expert e's rows are [expertStart[e], expertStart[e + 1]).
 */
export interface MoeRouteArgs {
  readonly logits: Float32Array;
  readonly nTokens: number;
  readonly nExperts: number;
  readonly topK: number;
  readonly normalizeTopK: boolean;
  /** [nExperts]: added to each expert's probability for choosing only (ERNIE 4.5). Absent: none. */
  readonly selectionBias?: Float32Array;
  /** Scores by sigmoid rather than softmax. Absent: softmax. */
  readonly sigmoid?: boolean;
  /** Multiplies every weight (GLM-4.5's routed_scaling_factor). Absent: 1. */
  readonly scale?: number;
  /** [nTokens·topK] out. */
  readonly slotWeight: Float32Array;
  /** [nTokens·topK] out. */
  readonly slotRow: Int32Array;
  /** [nTokens·topK] out. */
  readonly rowToken: Int32Array;
  /** [nExperts + 1] out. */
  readonly expertStart: Int32Array;
}

/** A KV cache's element type: a float type, or int8 with a scale per token and KV head. */
export type KvDType = DType | "int8";

/** A KV cache's storage: Int8Array for int8, else the float types' storage. */
export type KvData = TensorData | Int8Array;

/**
 * One layer's paged KV storage. Layout, block-major: the token at (block b, kv head h, offset o)
 * has row index ((b * nKvHeads + h) * blockSize + o), and
 *   K element i at row * headDim + i, V element i at the same place, except in an int8 cache,
 *   which stores each group of 4 tokens of a block (o / 4) interleaved, in the 4 · headDim
 *   elements from the group's first row: V element i of the token at lane o % 4 at i * 4 + o % 4
 *   (kv-cache.ts `kvValueIndex`), K elements by quads, 4c..4c+3 of the four tokens together
 *   (`kvKeyIndex`), so one 32-bit word holds four K elements of one token.
 * An int8 cache's value is int8 × its row's scale: kScale[row], vScale[row] (symmetric, absmax / 127).
 * A token's slot is block * blockSize + offset.
 */
export interface KvLayerCache {
  readonly dtype: KvDType;
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly k: KvData;
  readonly v: KvData;
  /** int8 only: [numBlocks * nKvHeads * blockSize] per-row scales. */
  readonly kScale?: Float32Array;
  readonly vScale?: Float32Array;
}

/**
 * Ragged paged attention. Query token t belongs to sequence row `qSeq[t]` of `blockTables` and
 * attends to that sequence's cached tokens at positions [ctxStart[t], ctxEnd[t]). Decode: one
 * token per sequence with [0, pos + 1). Causal prefill: each prompt token with [0, pos + 1).
 * A split (early q, sharding by token range) passes sub-ranges and asks for `lse` to merge.
 */
export interface AttentionArgs {
  /** [nTokens, nHeads * headDim]. */
  readonly out: Float32Array;
  /** [nTokens, nHeads * headDim], RoPE already applied. */
  readonly q: Float32Array;
  readonly cache: KvLayerCache;
  /** [nSeqRows, maxBlocksPerSeq] physical block ids; unused entries may hold anything. */
  readonly blockTables: Int32Array;
  readonly maxBlocksPerSeq: number;
  readonly qSeq: Int32Array;
  readonly ctxStart: Int32Array;
  readonly ctxEnd: Int32Array;
  readonly nTokens: number;
  readonly nHeads: number;
  /** Softmax scale, normally 1 / sqrt(headDim). */
  readonly scale: number;
  /**
   * Soft-capping of the scaled scores, cap · tanh(score / cap), before the softmax (Gemma 2);
   * absent or 0: none.
   */
  readonly softcap?: number;
  /** If given, [nTokens, nHeads] natural-log sum of exp(scores): -Infinity for an empty range. */
  readonly lse?: Float32Array;
}

/**
 * Builds the RoPE cos/sin tables [maxPos, headDim / 2] including llama3 / linear scaling.
 * Pure math on the config, shared by every backend.
 */
export interface RopeTables {
  readonly cos: Float32Array;
  readonly sin: Float32Array;
  readonly maxPos: number;
  readonly half: number;
}
