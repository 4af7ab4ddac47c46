import type { AttentionService, LayerAttention } from "../attention/service.js";
import type { AttentionOp, SlicedModel } from "../graph/converter.js";
import type { Op } from "../graph/ops.js";
import type { KernelBackend, PreparedWeight, RopeTables } from "../kernels/backend.js";
import { buildRopeTables } from "../kernels/rope.js";
import type { ModelConfig } from "../model/config.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, type Tensor, toFloat32 } from "../model/tensor.js";
import type { WeightStore } from "../model/types.js";
import { type BufferPlan, planBuffers } from "./buffer-plan.js";
import type { ModelExecutor } from "./model-executor.js";
import { MoeScratch, type PreparedMoe, prepareMoe, runMoe } from "./moe-runner.js";
import { createStepTiming, type ModelStep, type StepTiming } from "./step.js";

/** One micro-batch's state on a model worker: activation buffers only (no per-request state). */
interface MicroBatchBuffers {
  buffers: readonly Float32Array[];
  readonly timing: StepTiming;
  /** Scratch of the mixture-of-experts layers, if the model has any. */
  readonly moe: MoeScratch | null;
}

export interface ExecutorLimits {
  readonly maxTokens: number;
  readonly maxLogitRows: number;
  /** Micro-batches that may be in flight at once, each with its own activation buffers. */
  readonly microBatches: number;
}

/**
 * The model worker's executor: runs the converter's slices for a step, handing q/k/v to the
 * attention service at every cut. It holds weights and nothing per request, so the same
 * executor serves colocated, disaggregated and offloading placements alike.
 */
export class SliceExecutor implements ModelExecutor {
  private readonly plan: BufferPlan;
  private readonly prepared = new Map<string, PreparedWeight>();
  private readonly vectors = new Map<string, Float32Array>();
  /** Prepared experts of each MoE op, by the op's output tensor. */
  private readonly moes = new Map<string, PreparedMoe>();
  private readonly rope: RopeTables;
  /** RoPE of the window layers where the family gives them their own base (Gemma 3), else `rope`. */
  private readonly localRope: RopeTables;
  /** The embedding's scale as the table's dtype holds it (Gemma), or 1. */
  private embedScale = 1;
  private readonly scale: number;
  private readonly headDim: number;
  /** The dims of a head RoPE rotates (all but with partial rotary embeddings). */
  private readonly rotaryDim: number;
  private readonly order: Op[];
  private readonly batches: MicroBatchBuffers[];

  constructor(
    readonly sliced: SlicedModel,
    private readonly weights: WeightStore,
    readonly backend: KernelBackend,
    readonly config: ModelConfig,
    readonly limits: ExecutorLimits,
  ) {
    this.headDim = config.headDim;
    this.rotaryDim = config.rotaryDim ?? config.headDim;
    this.scale = config.attentionScale ?? 1 / Math.sqrt(config.headDim);
    this.order = sliceOrder(sliced);
    this.plan = planBuffers(sliced.graph, this.order);
    const need = (name: string): Tensor => {
      const t = weights.get(name);
      if (!t) throw new Error(`model is missing weight ${name}`);
      return t;
    };
    for (const op of this.order) {
      if (op.kind === "linear") {
        if (!this.prepared.has(op.weight))
          this.prepared.set(op.weight, backend.prepareWeight(need(op.weight)));
        if (op.bias && !this.vectors.has(op.bias)) this.vectors.set(op.bias, toFloat32(need(op.bias)));
      } else if (op.kind === "rmsnorm" && !this.vectors.has(op.weight)) {
        // Gemma's (1 + w), added once here in f32 as transformers does it (on a copy: an f32
        // tensor's data may be the model's own).
        const w = op.plusOne
          ? Float32Array.from(toFloat32(need(op.weight)), (v) => v + 1)
          : toFloat32(need(op.weight));
        this.vectors.set(op.weight, w);
      } else if (op.kind === "embed") {
        const table = need(op.table);
        if (op.scale !== undefined)
          this.embedScale = op.scaleExact ? op.scale : roundTo(table.dtype, op.scale);
      } else if (op.kind === "moe") {
        this.moes.set(op.out, prepareMoe(backend, op, need));
      }
    }
    this.rope = buildRopeTables(config, config.maxPositionEmbeddings);
    this.localRope =
      config.localRopeTheta === undefined
        ? this.rope
        : buildRopeTables(
            { ...config, ropeTheta: config.localRopeTheta, ropeScaling: null },
            config.maxPositionEmbeddings,
          );
    const moes = [...this.moes.values()];
    this.batches = Array.from({ length: limits.microBatches }, () => ({
      buffers: this.plan.buffers.map(
        (b) => new Float32Array((b.rows === "tokens" ? limits.maxTokens : limits.maxLogitRows) * b.width),
      ),
      timing: createStepTiming(),
      moe: moes.length > 0 ? new MoeScratch(moes, limits.maxTokens, config.hiddenSize) : null,
    }));
  }

  /** Model and attention-wait seconds summed over micro-batches; steps of the busiest one. */
  timing(): StepTiming {
    const t = createStepTiming();
    for (const b of this.batches) {
      t.model += b.timing.model;
      t.attention += b.timing.attention;
      t.steps = Math.max(t.steps, b.timing.steps);
    }
    return t;
  }

  /** The activation buffers one micro-batch needs: row space and width of each, in plan order. */
  get bufferShapes(): readonly { readonly rows: "tokens" | "logits"; readonly width: number }[] {
    return this.plan.buffers;
  }

  /**
   * Runs micro-batch `microBatch` in buffers the caller holds (a model worker's shared plane, where
   * the next slice may run in another process) instead of its own.
   */
  adoptBuffers(microBatch: number, buffers: readonly Float32Array[]): void {
    const ctx = this.batches[microBatch];
    if (!ctx) throw new Error(`micro-batch ${microBatch} is outside the executor's ${this.batches.length}`);
    const own = ctx.buffers;
    if (buffers.length !== own.length || buffers.some((b, i) => b.length < own[i]!.length))
      throw new Error("adopted activation buffers do not match the buffer plan");
    ctx.buffers = buffers;
  }

  /** The buffer of `tensor` in micro-batch `microBatch`. */
  tensorOf(microBatch: number, tensor: string): Float32Array {
    return this.buf(this.batches[microBatch]!, tensor);
  }

  /**
   * Runs slice `k` of `step`: its ops, with q handed to `attention.beginLayer` as soon as it is
   * complete. Returns the slice's attention op (its k, v and out tensors), null for the last.
   */
  runSlice(step: ModelStep, k: number, attention: Pick<LayerAttention, "beginLayer">): AttentionOp | null {
    const ctx = this.batches[step.microBatch]!;
    const slice = this.sliced.slices[k]!;
    const att = slice.attention ?? null;
    for (let i = 0; i < slice.ops.length; i++) {
      this.runOp(ctx, step, slice.ops[i]!);
      if (att && i + 1 === slice.qReadyAfter) attention.beginLayer(att.layer, step, this.buf(ctx, att.q));
    }
    if (att && slice.qReadyAfter === 0) attention.beginLayer(att.layer, step, this.buf(ctx, att.q));
    return att;
  }

  /** Bytes of activation buffers one micro-batch holds. */
  microBatchBytes(): number {
    const activations = this.plan.buffers.reduce(
      (acc, b) =>
        acc + 4 * b.width * (b.rows === "tokens" ? this.limits.maxTokens : this.limits.maxLogitRows),
      0,
    );
    return activations + (this.batches[0]?.moe?.bytes ?? 0);
  }

  private buf(ctx: MicroBatchBuffers, tensor: string): Float32Array {
    return ctx.buffers[this.plan.slotOf.get(tensor)!]!;
  }

  /**
   * Runs the whole forward pass for `step` in its micro-batch's buffers; returns the logits
   * buffer ([nLogits, vocab] valid). Awaits the attention service only where it is asynchronous.
   */
  async forward(step: ModelStep, attention: AttentionService): Promise<Float32Array> {
    if (step.nTokens > this.limits.maxTokens || step.nLogits > this.limits.maxLogitRows) {
      throw new Error(
        `step of ${step.nTokens} tokens / ${step.nLogits} logit rows exceeds the executor's limits`,
      );
    }
    const ctx = this.batches[step.microBatch];
    if (!ctx)
      throw new Error(`micro-batch ${step.microBatch} is outside the executor's ${this.batches.length}`);
    const timing = ctx.timing;
    for (let k = 0; k < this.sliced.slices.length; k++) {
      let t0 = performance.now();
      const att = this.runSlice(step, k, attention);
      if (!att) {
        timing.model += (performance.now() - t0) / 1000;
        break;
      }
      const t1 = performance.now();
      timing.model += (t1 - t0) / 1000;
      const pending = attention.finishLayer(
        att.layer,
        step,
        this.buf(ctx, att.k),
        this.buf(ctx, att.v),
        this.buf(ctx, att.out),
      );
      if (pending) await pending;
      t0 = performance.now();
      timing.attention += (t0 - t1) / 1000;
    }
    timing.steps++;
    return this.buf(ctx, this.sliced.graph.output);
  }

  private runOp(ctx: MicroBatchBuffers, step: ModelStep, op: Op): void {
    const be = this.backend;
    const info = this.sliced.graph.tensors.get(op.out)!;
    const rows = info.rows === "tokens" ? step.nTokens : step.nLogits;
    const out = this.buf(ctx, op.out);
    switch (op.kind) {
      case "embed":
        be.embedding(out, this.weights.get(op.table)!, step.tokens, step.nTokens);
        if (op.scale !== undefined) be.scale(out, out, this.embedScale, rows * info.width);
        return;
      case "rmsnorm": {
        // Per-head norms are the same kernel over rows of one head each.
        const heads = op.heads ?? 1;
        be.rmsnorm(
          out,
          this.buf(ctx, op.x),
          this.vectors.get(op.weight)!,
          rows * heads,
          info.width / heads,
          op.eps,
        );
        return;
      }
      case "split": {
        const x = this.buf(ctx, op.x);
        const from = this.sliced.graph.tensors.get(op.x)!.width;
        const w = info.width;
        for (let r = 0; r < rows; r++) copyRow(out, r * w, x, r * from + op.offset, w);
        return;
      }
      case "moe":
        runMoe(
          be,
          this.moes.get(op.out)!,
          ctx.moe!,
          out,
          this.buf(ctx, op.x),
          this.buf(ctx, op.logits),
          rows,
          info.width,
        );
        return;
      case "linear":
        be.matmul(
          out,
          this.buf(ctx, op.x),
          this.prepared.get(op.weight)!,
          rows,
          op.bias ? this.vectors.get(op.bias) : undefined,
        );
        return;
      case "rope": {
        const x = this.buf(ctx, op.x);
        if (x !== out) copyRow(out, 0, x, 0, rows * info.width);
        const tables = op.local ? this.localRope : this.rope;
        be.rope(out, step.positions, rows, op.heads, this.headDim, tables.cos, tables.sin, this.rotaryDim);
        return;
      }
      case "silu_mul":
        be.siluMul(out, this.buf(ctx, op.gate), this.buf(ctx, op.up), rows * info.width);
        return;
      case "gelu_mul":
        be.geluMul(out, this.buf(ctx, op.gate), this.buf(ctx, op.up), rows * info.width);
        return;
      case "softcap":
        be.softcap(out, this.buf(ctx, op.x), op.cap, rows * info.width);
        return;
      case "scale":
        be.scale(out, this.buf(ctx, op.x), op.factor, rows * info.width);
        return;
      case "sigmoid_gate":
        be.sigmoidGate(out, this.buf(ctx, op.x), this.buf(ctx, op.gate), rows, info.width);
        return;
      case "add":
        be.add(out, this.buf(ctx, op.a), this.buf(ctx, op.b), rows * info.width);
        return;
      case "select_rows": {
        const x = this.buf(ctx, op.x);
        const w = info.width;
        for (let r = 0; r < step.nLogits; r++) copyRow(out, r * w, x, step.logitRows[r]! * w, w);
        return;
      }
      case "attention":
        throw new Error("attention ops are run by the slice loop");
    }
  }

  get attentionScale(): number {
    return this.scale;
  }
}

/** `v` as a tensor of `dtype` stores it: transformers multiplies by √hidden in the activations' dtype. */
function roundTo(dtype: string, v: number): number {
  if (dtype === "bf16") return bf16ToF32(f32ToBf16(v));
  if (dtype === "f16") return f16ToF32(f32ToF16(v));
  return Math.fround(v);
}

/** Every op of the sliced model in execution order, attention ops included (the buffer plan's input). */
export function sliceOrder(sliced: SlicedModel): Op[] {
  const order: Op[] = [];
  for (const s of sliced.slices) {
    order.push(...s.ops);
    if (s.attention) order.push(s.attention);
  }
  return order;
}

function copyRow(dst: Float32Array, dstOff: number, src: Float32Array, srcOff: number, n: number): void {
  for (let i = 0; i < n; i++) dst[dstOff + i] = src[srcOff + i]!;
}
