import type { Op } from "../graph/ops.js";
import type { KernelBackend, PreparedExperts } from "../kernels/backend.js";
import { stackFloat32, type Tensor, toFloat32 } from "../model/tensor.js";

type MoeOp = Extract<Op, { kind: "moe" }>;

/** A mixture-of-experts op with its experts prepared for the backend's grouped products. */
export interface PreparedMoe {
  readonly op: MoeOp;
  readonly gate: PreparedExperts;
  readonly up: PreparedExperts;
  readonly down: PreparedExperts;
  /** The op's selection bias as f32 (ERNIE 4.5), read once. */
  readonly selectionBias?: Float32Array;
  /** gpt-oss's expert biases as f32, [experts, width] per projection, read once. */
  readonly biases?: { readonly gate: Float32Array; readonly up: Float32Array; readonly down: Float32Array };
}

export function prepareMoe(backend: KernelBackend, op: MoeOp, need: (name: string) => Tensor): PreparedMoe {
  return {
    op,
    gate: backend.prepareExperts(op.gate.map(need)),
    up: backend.prepareExperts(op.up.map(need)),
    down: backend.prepareExperts(op.down.map(need)),
    ...(op.selectionBias ? { selectionBias: Float32Array.from(toFloat32(need(op.selectionBias))) } : {}),
    ...(op.biases
      ? {
          biases: {
            gate: stackFloat32(op.biases.gate.map(need)),
            up: stackFloat32(op.biases.up.map(need)),
            down: stackFloat32(op.biases.down.map(need)),
          },
        }
      : {}),
  };
}

/**
 * Tokens a MoE layer runs at once: the scratch holds topK rows per token of expert activations,
 * so a long prefill is cut into chunks to bound it (64 MiB); a decode step is one chunk, which
 * reads each chosen expert's weights once for all its tokens.
 */
const SCRATCH_BYTES = 64 << 20;

/**
 * One micro-batch's MoE scratch, shared by its MoE layers (they run one after another):
 * allocated once, so a step allocates nothing per token.
 */
export class MoeScratch {
  readonly chunkTokens: number;
  readonly slotWeight: Float32Array;
  readonly slotRow: Int32Array;
  readonly rowToken: Int32Array;
  readonly expertStart: Int32Array;
  /** Gathered inputs [rows, dim], then the experts' down-projected outputs. */
  readonly rowsIn: Float32Array;
  readonly gate: Float32Array;
  readonly up: Float32Array;

  constructor(moes: readonly PreparedMoe[], maxTokens: number, dim: number) {
    const topK = Math.max(...moes.map((m) => m.op.topK));
    const hidden = Math.max(...moes.map((m) => m.op.hidden));
    const experts = Math.max(...moes.map((m) => m.gate.count));
    const perToken = topK * (2 * hidden + dim) * 4;
    this.chunkTokens = Math.max(1, Math.min(maxTokens, Math.floor(SCRATCH_BYTES / perToken)));
    const rows = this.chunkTokens * topK;
    this.slotWeight = new Float32Array(rows);
    this.slotRow = new Int32Array(rows);
    this.rowToken = new Int32Array(rows);
    this.expertStart = new Int32Array(experts + 1);
    this.rowsIn = new Float32Array(rows * dim);
    this.gate = new Float32Array(rows * hidden);
    this.up = new Float32Array(rows * hidden);
  }

  /** Bytes held. */
  get bytes(): number {
    const arrays = [
      this.slotWeight,
      this.slotRow,
      this.rowToken,
      this.expertStart,
      this.rowsIn,
      this.gate,
      this.up,
    ];
    return arrays.reduce((acc, a) => acc + a.byteLength, 0);
  }
}

/**
 * out[nTokens, dim] = the mixture for x[nTokens, dim] routed by logits[nTokens, experts]: route,
 * gather each expert's tokens together, run every expert's SwiGLU MLP as one grouped product per
 * projection, and sum each token's expert outputs by its routing weights.
 */
export function runMoe(
  be: KernelBackend,
  m: PreparedMoe,
  s: MoeScratch,
  out: Float32Array,
  x: Float32Array,
  logits: Float32Array,
  nTokens: number,
  dim: number,
): void {
  const { topK, normalizeTopK, hidden } = m.op;
  const nExperts = m.gate.count;
  for (let t0 = 0; t0 < nTokens; t0 += s.chunkTokens) {
    const n = Math.min(s.chunkTokens, nTokens - t0);
    // Views only for the later chunks of a long prefill; a decode step makes none.
    const xc = t0 === 0 ? x : x.subarray(t0 * dim);
    const oc = t0 === 0 ? out : out.subarray(t0 * dim);
    const lc = t0 === 0 ? logits : logits.subarray(t0 * nExperts);
    be.moeRoute({
      logits: lc,
      nTokens: n,
      nExperts,
      topK,
      normalizeTopK,
      ...(m.selectionBias ? { selectionBias: m.selectionBias } : {}),
      ...(m.op.sigmoid ? { sigmoid: true } : {}),
      ...(m.op.scale !== undefined ? { scale: m.op.scale } : {}),
      slotWeight: s.slotWeight,
      slotRow: s.slotRow,
      rowToken: s.rowToken,
      expertStart: s.expertStart,
    });
    const rows = n * topK;
    be.gatherRows(s.rowsIn, xc, s.rowToken, rows, dim);
    be.groupedMatmul(s.gate, s.rowsIn, m.gate, s.expertStart);
    be.groupedMatmul(s.up, s.rowsIn, m.up, s.expertStart);
    const b = m.biases;
    if (b) {
      be.expertBias(s.gate, b.gate, s.expertStart, nExperts, hidden);
      be.expertBias(s.up, b.up, s.expertStart, nExperts, hidden);
    }
    const clamp = m.op.swigluClamp;
    if (clamp) be.swigluClamped(s.gate, s.gate, s.up, rows * hidden, clamp.alpha, clamp.limit);
    else be.siluMul(s.gate, s.gate, s.up, rows * hidden);
    be.groupedMatmul(s.rowsIn, s.gate, m.down, s.expertStart);
    if (b) be.expertBias(s.rowsIn, b.down, s.expertStart, nExperts, dim);
    be.moeCombine(oc, s.rowsIn, s.slotRow, s.slotWeight, n, topK, dim);
  }
}
