/**
 * The operator vocabulary a model's forward pass is written in. A graph is a list of ops over
 * named activation tensors (one row per token, `width` fp32 features) and named weights (by their
 * Hugging Face names). Every op produces a fresh tensor name (SSA), so dependencies are explicit
 * and the converter can cut the graph anywhere; buffers are shared later by liveness.
 */
export type Op =
  /**
   * out = rows of the embedding table for the step's token ids, times `scale` when given (Gemma's
   * √hidden, rounded to the table's dtype first as transformers rounds it to the activations').
   */
  | {
      readonly kind: "embed";
      readonly out: string;
      readonly table: string;
      readonly scale?: number;
      /** Apply `scale` as given (f32), not rounded to the table's dtype first. */
      readonly scaleExact?: boolean;
    }
  /**
   * out = x / rms(x) * weight per row, or * (1 + weight) with `plusOne` (Gemma); with `heads`,
   * per each of that many equal slices of a row (q/k norms: one weight [width / heads] shared by
   * every head).
   */
  | {
      readonly kind: "rmsnorm";
      readonly out: string;
      readonly x: string;
      readonly weight: string;
      readonly eps: number;
      readonly heads?: number;
      readonly plusOne?: boolean;
    }
  /** out = x · Wᵀ (+ bias). */
  | {
      readonly kind: "linear";
      readonly out: string;
      readonly x: string;
      readonly weight: string;
      readonly bias?: string;
    }
  /**
   * out = RoPE(x) at the step's positions, x holding `heads` heads; `local`: with the window
   * layers' own base (Gemma 3's rope_local_base_freq) instead of the model's.
   */
  | {
      readonly kind: "rope";
      readonly out: string;
      readonly x: string;
      readonly heads: number;
      readonly local?: boolean;
    }
  /** The attention operator: where the converter cuts. q/k/v are post-RoPE. */
  | {
      readonly kind: "attention";
      readonly layer: number;
      readonly q: string;
      readonly k: string;
      readonly v: string;
      readonly out: string;
    }
  | { readonly kind: "silu_mul"; readonly out: string; readonly gate: string; readonly up: string }
  /** out = gelu_tanh(gate) * up (GeGLU with the tanh-approximated GELU). */
  | { readonly kind: "gelu_mul"; readonly out: string; readonly gate: string; readonly up: string }
  /** out = cap · tanh(x / cap) (Gemma 2's final logit soft-capping). */
  | { readonly kind: "softcap"; readonly out: string; readonly x: string; readonly cap: number }
  /** out = x · factor (Granite's residual multiplier on each block's output, and its logit divisor). */
  | { readonly kind: "scale"; readonly out: string; readonly x: string; readonly factor: number }
  /** out[t, :] = sigmoid(gate[t]) · x[t, :], gate one value a row (Qwen2-MoE's shared-expert gate). */
  | { readonly kind: "sigmoid_gate"; readonly out: string; readonly x: string; readonly gate: string }
  /** out = columns [offset, offset + width(out)) of x: one part of a fused projection's output. */
  | { readonly kind: "split"; readonly out: string; readonly x: string; readonly offset: number }
  /**
   * A mixture of experts: each token's top-k experts by router `logits` ([tokens, experts]) run
   * SwiGLU MLPs (expert e: down[e](silu(gate[e]·x) * up[e]·x)), summed with their routing weights:
   * the softmax over all experts of the chosen ones, rescaled to sum to 1 when `normalizeTopK`.
   */
  | {
      readonly kind: "moe";
      readonly out: string;
      readonly x: string;
      readonly logits: string;
      readonly gate: readonly string[];
      readonly up: readonly string[];
      readonly down: readonly string[];
      readonly topK: number;
      readonly normalizeTopK: boolean;
      /** Rows of each expert's gate/up output. */
      readonly hidden: number;
      /**
       * A per-expert bias ([1, experts]) added to the softmax probabilities for choosing the
       * top-k only (ERNIE 4.5); the routing weights stay the probabilities.
       */
      readonly selectionBias?: string;
      /** Scores by sigmoid of the logits rather than softmax (MoeConfig.sigmoidScores). */
      readonly sigmoid?: boolean;
      /** Multiplies the routing weights (MoeConfig.routedScale). Absent: 1. */
      readonly scale?: number;
      /** gpt-oss: per-expert biases of the gate, up ([hidden] each) and down ([dim]) projections. */
      readonly biases?: {
        readonly gate: readonly string[];
        readonly up: readonly string[];
        readonly down: readonly string[];
      };
      /** gpt-oss's clamped SwiGLU (MoeConfig.swigluClamp) in place of silu(gate)·up. */
      readonly swigluClamp?: { readonly alpha: number; readonly limit: number };
    }
  | { readonly kind: "add"; readonly out: string; readonly a: string; readonly b: string }
  /** out = the rows of x whose logits are wanted (the last token of each sequence). */
  | { readonly kind: "select_rows"; readonly out: string; readonly x: string };

export type OpKind = Op["kind"];

/** Rows of a tensor: one per token of the step, or one per requested logit row. */
export type RowSpace = "tokens" | "logits";

export interface TensorInfo {
  readonly name: string;
  readonly width: number;
  readonly rows: RowSpace;
}

export interface ModelGraph {
  readonly ops: readonly Op[];
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** The tensor holding logits [nLogits, vocab]. */
  readonly output: string;
  /** Geometry the attention ops need. */
  readonly attention: {
    readonly numLayers: number;
    readonly numHeads: number;
    readonly numKvHeads: number;
    readonly headDim: number;
    /** Per layer: the sliding window it attends within, or null (all keys). Absent: none anywhere. */
    readonly windows?: readonly (number | null)[];
  };
}

export function opInputs(op: Op): string[] {
  switch (op.kind) {
    case "embed":
      return [];
    case "rmsnorm":
    case "linear":
    case "rope":
    case "select_rows":
    case "split":
    case "softcap":
    case "scale":
      return [op.x];
    case "moe":
      return [op.x, op.logits];
    case "attention":
      return [op.q, op.k, op.v];
    case "silu_mul":
    case "gelu_mul":
      return [op.gate, op.up];
    case "add":
      return [op.a, op.b];
    case "sigmoid_gate":
      return [op.x, op.gate];
  }
}

export function opWeights(op: Op): string[] {
  switch (op.kind) {
    case "embed":
      return [op.table];
    case "rmsnorm":
      return [op.weight];
    case "linear":
      return op.bias ? [op.weight, op.bias] : [op.weight];
    case "moe":
      return [
        ...op.gate,
        ...op.up,
        ...op.down,
        ...(op.selectionBias ? [op.selectionBias] : []),
        ...(op.biases ? [...op.biases.gate, ...op.biases.up, ...op.biases.down] : []),
      ];
    default:
      return [];
  }
}

/**
 * The input whose buffer the op may overwrite with its output (kernels that work in place), or
 * null. Lets the buffer planner reuse memory when that input dies at this op.
 */
export function opAliasableInput(op: Op): string | null {
  switch (op.kind) {
    case "rmsnorm":
    case "rope":
    case "softcap":
    case "scale":
    case "sigmoid_gate":
      return op.x;
    case "silu_mul":
    case "gelu_mul":
      return op.gate;
    case "add":
      return op.a;
    default:
      return null;
  }
}
