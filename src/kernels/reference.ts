import type { DType, Tensor, TensorData } from "../model/tensor.js";
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  floatTensor,
  isQuantTensor,
  readElement,
} from "../model/tensor.js";
import type {
  AttentionArgs,
  KernelBackend,
  KvLayerCache,
  MoeRouteArgs,
  PreparedExperts,
  PreparedWeight,
} from "./backend.js";
import { checkCount, checkLength } from "./checks.js";
import { checkKvBlockSize, kvKeyIndex, kvValueIndex, quantizeKvRow, readKey, readValue } from "./kv-cache.js";
import { gatherRowsReference, moeCombineReference, moeRouteReference } from "./moe-reference.js";
import {
  isQuantReference,
  prepareQuantReference,
  quantEmbeddingReference,
  quantMatmulReference,
} from "./quant-reference.js";
import { samplingRows } from "./sampling-rows.js";

/** The reference keeps the weight as stored plus one row of scratch to widen it into. */
interface ReferenceWeight extends PreparedWeight {
  readonly dtype: DType;
  readonly data: TensorData;
  readonly rowScratch: Float64Array;
}

function widen(dtype: DType, bits: number): number {
  return dtype === "bf16" ? bf16ToF32(bits) : f16ToF32(bits);
}

/** Stores a float into a cache element of the given dtype (round to nearest even). */
function narrow(dtype: DType, value: number): number {
  if (dtype === "f32") return value;
  return dtype === "bf16" ? f32ToBf16(value) : f32ToF16(value);
}

/** An int8 cache's block size and scales, checked as the native addon checks them. */
function checkInt8Cache(what: string, c: KvLayerCache): void {
  if (c.dtype !== "int8") return;
  checkKvBlockSize(c.dtype, c.blockSize);
  const rows = c.numBlocks * c.nKvHeads * c.blockSize;
  if (!(c.k instanceof Int8Array) || !(c.v instanceof Int8Array))
    throw new TypeError(`${what}: an int8 cache's k and v must be Int8Arrays`);
  if (!c.kScale || !c.vScale) throw new TypeError(`${what}: an int8 cache needs kScale and vScale`);
  checkLength(what, "cache.kScale", c.kScale, rows);
  checkLength(what, "cache.vScale", c.vScale, rows);
}

interface ReferenceExperts extends PreparedExperts {
  readonly members: readonly ReferenceWeight[];
}

interface ReferenceQuantExperts extends PreparedExperts {
  readonly quantMembers: readonly PreparedWeight[];
}

/** out[outOff + t·rows + r] = x[xOff + t·cols ...] · row r of w (+ bias[r]), for nTokens tokens. */
function matmulRows(
  out: Float32Array,
  outOff: number,
  x: Float32Array,
  xOff: number,
  w: ReferenceWeight,
  nTokens: number,
  bias?: Float32Array,
): void {
  const { rows, cols, dtype, data } = w;
  const row = w.rowScratch;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    if (dtype === "f32") for (let c = 0; c < cols; c++) row[c] = data[base + c]!;
    else for (let c = 0; c < cols; c++) row[c] = widen(dtype, data[base + c]!);
    for (let t = 0; t < nTokens; t++) {
      let acc = bias ? bias[r]! : 0;
      const xo = xOff + t * cols;
      for (let c = 0; c < cols; c++) acc += x[xo + c]! * row[c]!;
      out[outOff + t * rows + r] = acc;
    }
  }
}

/**
 * Plain TypeScript kernels: straightforward loops accumulating in doubles. The oracle the native
 * kernels are tested against, and the fallback when the addon cannot be loaded. Not fast.
 */
export class ReferenceBackend implements KernelBackend {
  readonly name = "reference";

  describe(): string {
    return "reference TypeScript kernels (single thread, f64 accumulation)";
  }

  setThreads(_n: number): void {
    // Single-threaded by design.
  }

  prepareWeight(tensor: Tensor): PreparedWeight {
    if (isQuantTensor(tensor)) return prepareQuantReference(tensor);
    const w = tensor;
    if (w.shape.length !== 2) throw new TypeError(`prepareWeight: ${w.name} must be 2-D, got [${w.shape}]`);
    const [rows, cols] = w.shape as [number, number];
    checkLength("prepareWeight", w.name, w.data, rows * cols);
    const prepared: ReferenceWeight = {
      rows,
      cols,
      dtype: w.dtype,
      data: w.data,
      rowScratch: new Float64Array(cols),
    };
    return prepared;
  }

  matmul(out: Float32Array, x: Float32Array, w: PreparedWeight, nTokens: number, bias?: Float32Array): void {
    if (isQuantReference(w)) {
      quantMatmulReference(out, x, w, nTokens, bias);
      return;
    }
    const rw = w as ReferenceWeight;
    if (!(rw.rowScratch instanceof Float64Array))
      throw new TypeError("matmul: w was not prepared by the reference backend");
    const { rows, cols } = rw;
    checkCount("matmul", "nTokens", nTokens);
    checkLength("matmul", "x", x, nTokens * cols);
    checkLength("matmul", "out", out, nTokens * rows);
    if (bias) checkLength("matmul", "bias", bias, rows);
    matmulRows(out, 0, x, 0, rw, nTokens, bias);
  }

  prepareExperts(ws: readonly Tensor[]): PreparedExperts {
    if (ws.some((w) => isQuantTensor(w))) {
      // Quantized experts (a GGUF mixture): each through the quantized reference product.
      const members = ws.map((w) => this.prepareWeight(w));
      const first = members[0]!;
      for (const [i, m] of members.entries()) {
        if (!isQuantReference(m) || m.rows !== first.rows || m.cols !== first.cols || m.dtype !== first.dtype)
          throw new TypeError(`prepareExperts: ${ws[i]!.name} differs from expert 0 in format or shape`);
      }
      const quant: ReferenceQuantExperts = {
        count: members.length,
        rows: first.rows,
        cols: first.cols,
        dtype: ws[0]!.dtype,
        quantMembers: members,
      };
      return quant;
    }
    const members = ws.map((w) => this.prepareWeight(floatTensor(w, "prepareExperts")) as ReferenceWeight);
    const first = members[0];
    if (!first) throw new TypeError("prepareExperts: no experts");
    for (const [i, m] of members.entries()) {
      if (m.rows !== first.rows || m.cols !== first.cols || m.dtype !== first.dtype)
        throw new TypeError(
          `prepareExperts: ${ws[i]!.name} is [${m.rows}, ${m.cols}] ${m.dtype}, expert 0 is [${first.rows}, ${first.cols}] ${first.dtype}`,
        );
    }
    const prepared: ReferenceExperts = {
      count: members.length,
      rows: first.rows,
      cols: first.cols,
      dtype: first.dtype,
      members,
    };
    return prepared;
  }

  moeRoute(args: MoeRouteArgs): void {
    moeRouteReference(args);
  }

  gatherRows(out: Float32Array, x: Float32Array, rows: Int32Array, nRows: number, dim: number): void {
    gatherRowsReference(out, x, rows, nRows, dim);
  }

  groupedMatmul(out: Float32Array, x: Float32Array, w: PreparedExperts, expertStart: Int32Array): void {
    const rq = w as ReferenceQuantExperts;
    if (Array.isArray(rq.quantMembers)) {
      checkLength("groupedMatmul", "expertStart", expertStart, rq.count + 1);
      for (let e = 0; e < rq.count; e++) {
        const r0 = expertStart[e]!;
        const n = expertStart[e + 1]! - r0;
        if (n < 0) throw new RangeError(`groupedMatmul: expertStart decreases at expert ${e}`);
        if (n > 0)
          quantMatmulReference(
            out.subarray(r0 * rq.rows, (r0 + n) * rq.rows),
            x.subarray(r0 * rq.cols, (r0 + n) * rq.cols),
            rq.quantMembers[e]!,
            n,
          );
      }
      return;
    }
    const re = w as ReferenceExperts;
    if (!Array.isArray(re.members))
      throw new TypeError("groupedMatmul: w was not prepared by the reference backend");
    checkLength("groupedMatmul", "expertStart", expertStart, re.count + 1);
    const total = expertStart[re.count]!;
    checkLength("groupedMatmul", "x", x, total * re.cols);
    checkLength("groupedMatmul", "out", out, total * re.rows);
    for (let e = 0; e < re.count; e++) {
      const r0 = expertStart[e]!;
      const n = expertStart[e + 1]! - r0;
      if (n < 0) throw new RangeError(`groupedMatmul: expertStart decreases at expert ${e}`);
      if (n > 0) matmulRows(out, r0 * re.rows, x, r0 * re.cols, re.members[e]!, n);
    }
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
    moeCombineReference(out, y, slotRow, slotWeight, nTokens, topK, dim);
  }

  embedding(out: Float32Array, table: Tensor, tokens: Int32Array, nTokens: number): void {
    if (table.shape.length !== 2) throw new TypeError(`embedding: ${table.name} must be 2-D`);
    const [vocab, dim] = table.shape as [number, number];
    checkCount("embedding", "nTokens", nTokens);
    checkLength("embedding", "tokens", tokens, nTokens);
    checkLength("embedding", "out", out, nTokens * dim);
    if (isQuantTensor(table)) {
      quantEmbeddingReference(out, table, tokens, nTokens);
      return;
    }
    checkLength("embedding", table.name, table.data, vocab * dim);
    for (let t = 0; t < nTokens; t++) {
      const id = tokens[t]!;
      if (id < 0 || id >= vocab)
        throw new RangeError(`embedding: tokens[${t}] = ${id} is outside [0, ${vocab})`);
      for (let i = 0; i < dim; i++) out[t * dim + i] = readElement(table.dtype, table.data, id * dim + i);
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
    checkCount("rmsnorm", "nTokens", nTokens);
    checkLength("rmsnorm", "x", x, nTokens * dim);
    checkLength("rmsnorm", "out", out, nTokens * dim);
    checkLength("rmsnorm", "weight", weight, dim);
    for (let t = 0; t < nTokens; t++) {
      const o = t * dim;
      let ss = 0;
      for (let i = 0; i < dim; i++) ss += x[o + i]! * x[o + i]!;
      const inv = 1 / Math.sqrt(ss / dim + eps);
      for (let i = 0; i < dim; i++) out[o + i] = x[o + i]! * inv * weight[i]!;
    }
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
    checkCount("rope", "nTokens", nTokens);
    checkLength("rope", "x", x, nTokens * nHeads * headDim);
    checkLength("rope", "positions", positions, nTokens);
    if (!Number.isInteger(rotaryDim) || rotaryDim < 2 || rotaryDim % 2 !== 0 || rotaryDim > headDim)
      throw new RangeError(`rope: rotaryDim must be even and at most headDim (${headDim}), got ${rotaryDim}`);
    const half = rotaryDim >> 1;
    const maxPos = Math.min(cos.length, sin.length) / half;
    for (let t = 0; t < nTokens; t++) {
      const p = positions[t]!;
      if (p < 0 || p >= maxPos)
        throw new RangeError(`rope: positions[${t}] = ${p} is outside [0, ${maxPos})`);
      for (let h = 0; h < nHeads; h++) {
        const o = (t * nHeads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const c = cos[p * half + i]!;
          const s = sin[p * half + i]!;
          const a = x[o + i]!;
          const b = x[o + half + i]!;
          x[o + i] = a * c - b * s;
          x[o + half + i] = b * c + a * s;
        }
      }
    }
  }

  expertBias(
    out: Float32Array,
    bias: Float32Array,
    expertStart: Int32Array,
    nExperts: number,
    width: number,
  ): void {
    checkLength("expertBias", "bias", bias, nExperts * width);
    checkLength("expertBias", "expertStart", expertStart, nExperts + 1);
    for (let e = 0; e < nExperts; e++) {
      const r0 = expertStart[e]!;
      const r1 = expertStart[e + 1]!;
      if (r0 < 0 || r1 < r0 || r1 * width > out.length)
        throw new RangeError(`expertBias: expertStart[${e}..${e + 1}] is not an ordered range inside out`);
      for (let r = r0; r < r1; r++)
        for (let i = 0; i < width; i++) out[r * width + i] = out[r * width + i]! + bias[e * width + i]!;
    }
  }

  swigluClamped(
    out: Float32Array,
    gate: Float32Array,
    up: Float32Array,
    n: number,
    alpha: number,
    limit: number,
  ): void {
    checkLength("swigluClamped", "gate", gate, n);
    checkLength("swigluClamped", "up", up, n);
    checkLength("swigluClamped", "out", out, n);
    for (let i = 0; i < n; i++) {
      const g = Math.min(gate[i]!, limit);
      const u = Math.min(Math.max(up[i]!, -limit), limit);
      out[i] = ((u + 1) * g) / (1 + Math.exp(-alpha * g));
    }
  }

  siluMul(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
    checkLength("siluMul", "gate", gate, n);
    checkLength("siluMul", "up", up, n);
    checkLength("siluMul", "out", out, n);
    for (let i = 0; i < n; i++) {
      const g = gate[i]!;
      out[i] = (g / (1 + Math.exp(-g))) * up[i]!;
    }
  }

  geluMul(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
    checkLength("geluMul", "gate", gate, n);
    checkLength("geluMul", "up", up, n);
    checkLength("geluMul", "out", out, n);
    const c = Math.sqrt(2 / Math.PI);
    for (let i = 0; i < n; i++) {
      const x = gate[i]!;
      out[i] = 0.5 * x * (1 + Math.tanh(c * (x + 0.044715 * x * x * x))) * up[i]!;
    }
  }

  softcap(out: Float32Array, x: Float32Array, cap: number, n: number): void {
    checkLength("softcap", "x", x, n);
    checkLength("softcap", "out", out, n);
    if (!(cap > 0)) throw new RangeError(`softcap: cap must be positive, got ${cap}`);
    for (let i = 0; i < n; i++) out[i] = cap * Math.tanh(x[i]! / cap);
  }

  sigmoidGate(out: Float32Array, x: Float32Array, gate: Float32Array, rows: number, width: number): void {
    checkLength("sigmoidGate", "x", x, rows * width);
    checkLength("sigmoidGate", "out", out, rows * width);
    checkLength("sigmoidGate", "gate", gate, rows);
    for (let r = 0; r < rows; r++) {
      const s = 1 / (1 + Math.exp(-gate[r]!));
      for (let i = 0; i < width; i++) out[r * width + i] = s * x[r * width + i]!;
    }
  }

  scale(out: Float32Array, x: Float32Array, factor: number, n: number): void {
    checkLength("scale", "x", x, n);
    checkLength("scale", "out", out, n);
    for (let i = 0; i < n; i++) out[i] = x[i]! * factor;
  }

  add(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void {
    checkLength("add", "a", a, n);
    checkLength("add", "b", b, n);
    checkLength("add", "out", out, n);
    for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
  }

  softmax(x: Float32Array, nRows: number, dim: number): void {
    checkLength("softmax", "x", x, nRows * dim);
    for (let r = 0; r < nRows; r++) samplingRows.rowSoftmax(x.subarray(r * dim), x, r * dim, dim, 1);
  }

  rowSoftmax(out: Float32Array, x: Float32Array, off: number, n: number, scale: number): void {
    checkLength("rowSoftmax", "x", x, off + n);
    checkLength("rowSoftmax", "out", out, n);
    if (!(scale > 0) || !Number.isFinite(scale))
      throw new RangeError("rowSoftmax: scale must be positive and finite");
    samplingRows.rowSoftmax(out, x, off, n, scale);
  }

  argmax(x: Float32Array, off: number, n: number): number {
    checkLength("argmax", "x", x, off + n);
    return samplingRows.argmax(x, off, n);
  }

  drawIndex(p: Float32Array, n: number, u: number): number {
    checkLength("drawIndex", "p", p, n);
    if (!(u >= 0 && u < 1)) throw new RangeError("drawIndex: u must be in [0, 1)");
    return samplingRows.drawIndex(p, n, u);
  }

  topK(x: Float32Array, off: number, n: number, k: number, idx: Int32Array): number {
    checkLength("topK", "x", x, off + n);
    if (!Number.isInteger(k) || k < 1) throw new TypeError(`topK: k must be an integer >= 1, got ${k}`);
    checkLength("topK", "idx", idx, Math.min(k, n));
    return samplingRows.topK(x, off, n, k, idx);
  }

  nucleusCandidates(p: Float32Array, n: number, topP: number, idx: Int32Array): number {
    checkLength("nucleusCandidates", "p", p, n);
    checkLength("nucleusCandidates", "idx", idx, n);
    if (!(topP > 0 && topP <= 1)) throw new RangeError("nucleusCandidates: topP must be in (0, 1]");
    return samplingRows.nucleusCandidates(p, n, topP, idx);
  }

  logSoftmax(out: Float32Array, x: Float32Array, nRows: number, dim: number): void {
    checkLength("logSoftmax", "x", x, nRows * dim);
    checkLength("logSoftmax", "out", out, nRows * dim);
    for (let r = 0; r < nRows; r++) {
      const o = r * dim;
      let m = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < dim; i++) m = Math.max(m, x[o + i]!);
      let sum = 0;
      for (let i = 0; i < dim; i++) sum += Math.exp(x[o + i]! - m);
      const logZ = m + Math.log(sum);
      for (let i = 0; i < dim; i++) out[o + i] = x[o + i]! - logZ;
    }
  }

  kvWrite(cache: KvLayerCache, k: Float32Array, v: Float32Array, slots: Int32Array, nTokens: number): void {
    const { dtype, numBlocks, blockSize, nKvHeads, headDim } = cache;
    const width = nKvHeads * headDim;
    checkCount("kvWrite", "nTokens", nTokens);
    checkLength("kvWrite", "k", k, nTokens * width);
    checkLength("kvWrite", "v", v, nTokens * width);
    checkLength("kvWrite", "slots", slots, nTokens);
    checkLength("kvWrite", "cache.k", cache.k, numBlocks * blockSize * width);
    checkLength("kvWrite", "cache.v", cache.v, numBlocks * blockSize * width);
    checkInt8Cache("kvWrite", cache);
    for (let t = 0; t < nTokens; t++) {
      const slot = slots[t]!;
      if (slot < 0) continue; // padding token: nothing to store
      if (slot >= numBlocks * blockSize)
        throw new RangeError(
          `kvWrite: slots[${t}] = ${slot} is outside the cache (${numBlocks * blockSize} slots)`,
        );
      const block = Math.floor(slot / blockSize);
      const off = slot % blockSize;
      for (let h = 0; h < nKvHeads; h++) {
        const row = (block * nKvHeads + h) * blockSize + off;
        const src = t * width + h * headDim;
        if (dtype === "int8") {
          const kAt = (i: number) => kvKeyIndex(dtype, row, headDim, i);
          const vAt = (i: number) => kvValueIndex(dtype, row, headDim, i);
          cache.kScale![row] = quantizeKvRow(cache.k as Int8Array, kAt, k, src, headDim);
          cache.vScale![row] = quantizeKvRow(cache.v as Int8Array, vAt, v, src, headDim);
          continue;
        }
        for (let i = 0; i < headDim; i++) {
          cache.k[row * headDim + i] = narrow(dtype, k[src + i]!);
          cache.v[row * headDim + i] = narrow(dtype, v[src + i]!);
        }
      }
    }
  }

  attention(args: AttentionArgs): void {
    const {
      out,
      q,
      cache,
      blockTables,
      maxBlocksPerSeq,
      qSeq,
      ctxStart,
      ctxEnd,
      nTokens,
      nHeads,
      scale,
      lse,
    } = args;
    const cap = args.softcap ?? 0;
    const { blockSize, nKvHeads, headDim, numBlocks } = cache;
    if (nHeads % nKvHeads !== 0)
      throw new TypeError(`attention: nHeads ${nHeads} is not a multiple of nKvHeads ${nKvHeads}`);
    const group = nHeads / nKvHeads;
    const width = nHeads * headDim;
    checkCount("attention", "nTokens", nTokens);
    checkLength("attention", "q", q, nTokens * width);
    checkLength("attention", "out", out, nTokens * width);
    checkLength("attention", "qSeq", qSeq, nTokens);
    checkLength("attention", "ctxStart", ctxStart, nTokens);
    checkLength("attention", "ctxEnd", ctxEnd, nTokens);
    if (lse) checkLength("attention", "lse", lse, nTokens * nHeads);
    checkInt8Cache("attention", cache);
    const scores: number[] = [];
    const acc = new Float64Array(headDim);
    for (let t = 0; t < nTokens; t++) {
      const seq = qSeq[t]!;
      const start = ctxStart[t]!;
      const end = ctxEnd[t]!;
      if (seq < 0 || (seq + 1) * maxBlocksPerSeq > blockTables.length)
        throw new RangeError(`attention: qSeq[${t}] = ${seq} has no row in blockTables`);
      if (start < 0 || end < start || end > maxBlocksPerSeq * blockSize)
        throw new RangeError(`attention: token ${t} range [${start}, ${end}) exceeds its block table`);
      for (let h = 0; h < nHeads; h++) {
        const kvh = Math.floor(h / group);
        const qo = t * width + h * headDim;
        scores.length = 0;
        let m = Number.NEGATIVE_INFINITY;
        for (let p = start; p < end; p++) {
          const kr = this.#cacheRow(blockTables, seq, maxBlocksPerSeq, p, blockSize, nKvHeads, kvh);
          if (kr < 0 || kr >= numBlocks * nKvHeads * blockSize)
            throw new RangeError(
              `attention: block table entry for token ${t} position ${p} is outside the cache`,
            );
          let s = 0;
          for (let i = 0; i < headDim; i++) s += q[qo + i]! * readKey(cache, kr, i);
          s *= scale;
          if (cap > 0) s = cap * Math.tanh(s / cap);
          scores.push(s);
          m = Math.max(m, s);
        }
        acc.fill(0);
        let sum = 0;
        for (let p = start; p < end; p++) {
          const w = Math.exp(scores[p - start]! - m);
          sum += w;
          const vr = this.#cacheRow(blockTables, seq, maxBlocksPerSeq, p, blockSize, nKvHeads, kvh);
          for (let i = 0; i < headDim; i++) acc[i] = acc[i]! + w * readValue(cache, vr, i);
        }
        for (let i = 0; i < headDim; i++) out[qo + i] = sum > 0 ? acc[i]! / sum : 0;
        if (lse) lse[t * nHeads + h] = sum > 0 ? m + Math.log(sum) : Number.NEGATIVE_INFINITY;
      }
    }
  }

  /** The row index ((block * nKvHeads + kvh) * blockSize + offset) of a sequence's position. */
  #cacheRow(
    blockTables: Int32Array,
    seq: number,
    maxBlocksPerSeq: number,
    pos: number,
    blockSize: number,
    nKvHeads: number,
    kvh: number,
  ): number {
    const block = blockTables[seq * maxBlocksPerSeq + Math.floor(pos / blockSize)]!;
    return (block * nKvHeads + kvh) * blockSize + (pos % blockSize);
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
    checkCount("mergeAttention", "nTokens", nTokens);
    checkLength("mergeAttention", "outA", outA, nTokens * nHeads * headDim);
    checkLength("mergeAttention", "outB", outB, nTokens * nHeads * headDim);
    checkLength("mergeAttention", "lseA", lseA, nTokens * nHeads);
    checkLength("mergeAttention", "lseB", lseB, nTokens * nHeads);
    for (let r = 0; r < nTokens * nHeads; r++) {
      const la = lseA[r]!;
      const lb = lseB[r]!;
      const o = r * headDim;
      if (lb === Number.NEGATIVE_INFINITY) continue; // B has no keys: A stands
      if (la === Number.NEGATIVE_INFINITY) {
        for (let i = 0; i < headDim; i++) outA[o + i] = outB[o + i]!;
        lseA[r] = lb;
        continue;
      }
      const m = Math.max(la, lb);
      const wa = Math.exp(la - m);
      const wb = Math.exp(lb - m);
      const z = wa + wb;
      for (let i = 0; i < headDim; i++) outA[o + i] = (outA[o + i]! * wa + outB[o + i]! * wb) / z;
      lseA[r] = m + Math.log(z);
    }
  }

  attentionSinks(
    out: Float32Array,
    lse: Float32Array,
    sinks: Float32Array,
    nTokens: number,
    nHeads: number,
    headDim: number,
  ): void {
    checkCount("attentionSinks", "nTokens", nTokens);
    checkLength("attentionSinks", "out", out, nTokens * nHeads * headDim);
    checkLength("attentionSinks", "lse", lse, nTokens * nHeads);
    checkLength("attentionSinks", "sinks", sinks, nHeads);
    for (let r = 0; r < nTokens * nHeads; r++) {
      const s = sinks[r % nHeads]!;
      const l = lse[r]!;
      const o = r * headDim;
      if (l === Number.NEGATIVE_INFINITY) {
        out.fill(0, o, o + headDim);
        lse[r] = s;
        continue;
      }
      const m = Math.max(l, s);
      const wl = Math.exp(l - m);
      const ws = Math.exp(s - m);
      const f = wl / (wl + ws);
      for (let i = 0; i < headDim; i++) out[o + i] = out[o + i]! * f;
      lse[r] = m + Math.log(wl + ws);
    }
  }
}
