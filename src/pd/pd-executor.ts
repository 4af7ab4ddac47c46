import { AttentionWorkerLostError } from "../attention/remote-service.js";
import type { AttentionService } from "../attention/service.js";
import type { SlicedModel } from "../graph/converter.js";
import type { KernelBackend } from "../kernels/backend.js";
import type { ModelConfig } from "../model/config.js";
import type { WeightStore } from "../model/types.js";
import { type ExecContext, type ExecutorLimits, SliceExecutor } from "../runtime/executor.js";
import { createModelStep, type ModelStep } from "../runtime/step.js";
import type { HybridAttentionService } from "./hybrid-attention.js";
import { createPrefillBatch, type PrefillBatch } from "./prefill-link.js";
import { PrefillFlag } from "./protocol.js";

/** Per micro-batch: the decode instance's share of the step, the prefill batches, and logits. */
interface PdContext {
  readonly sub: ModelStep;
  readonly batches: PrefillBatch[];
  /** For each logit row of the step: local sub-step row (≥ 0) or -(1 + instance). */
  readonly rowSource: Int32Array;
  readonly logits: Float32Array;
}

/**
 * The decode instance's executor under PD disaggregation: the engine schedules as always (chunked
 * prefill and decode in one token budget, KV admission through the hybrid attention service), and
 * this executor sends each step's prefill chunks to the prefill instance that holds their prompt
 * KV, while it runs the rest of the step itself. The prefill instance streams the KV of requests
 * kept here back layer by layer and returns the logits of sampling rows, which are merged into the
 * step's logits in order, so sampling is the engine's own.
 */
export class PdExecutor extends SliceExecutor {
  private readonly pd = new WeakMap<ExecContext, PdContext>();
  private hybrid: HybridAttentionService | null = null;

  constructor(
    sliced: SlicedModel,
    weights: WeightStore,
    backend: KernelBackend,
    config: ModelConfig,
    limits: ExecutorLimits,
  ) {
    super(sliced, weights, backend, config, limits);
  }

  /** The attention service whose placement decides where each prefill chunk runs. */
  attach(hybrid: HybridAttentionService): void {
    this.hybrid = hybrid;
  }

  override createContext(): ExecContext {
    const ctx = super.createContext();
    const { maxTokens, maxLogitRows } = this.limits;
    const n = this.hybrid?.instances.length ?? 0;
    this.pd.set(ctx, {
      sub: createModelStep(maxTokens, maxLogitRows),
      batches: Array.from({ length: n }, () => createPrefillBatch(maxTokens, maxLogitRows)),
      rowSource: new Int32Array(maxLogitRows),
      logits: new Float32Array(maxLogitRows * this.config.vocabSize),
    });
    return ctx;
  }

  override async forward(
    ctx: ExecContext,
    step: ModelStep,
    attention: AttentionService,
  ): Promise<Float32Array> {
    const hybrid = this.hybrid;
    const pd = this.pd.get(ctx);
    if (!hybrid || !pd) throw new Error("PdExecutor: no hybrid attention service attached");
    const { sub, batches } = pd;
    sub.nSeqs = 0;
    sub.nTokens = 0;
    sub.nLogits = 0;
    sub.seqStart[0] = 0;
    for (const b of batches) {
      b.nSeqs = 0;
      b.nTokens = 0;
      b.seqStart[0] = 0;
    }
    let r = 0; // next logit row of the step
    for (let s = 0; s < step.nSeqs; s++) {
      const id = step.seqIds[s]!;
      const first = step.seqStart[s]!;
      const last = step.seqStart[s + 1]!;
      const samples = r < step.nLogits && step.logitRows[r] === last - 1;
      const target = hybrid.prefillTarget(id);
      if (target >= 0) {
        const b = batches[target]!;
        b.seqIds[b.nSeqs] = id;
        b.flags[b.nSeqs] =
          (hybrid.isOffloaded(id) ? PrefillFlag.KEEP : 0) | (samples ? PrefillFlag.LOGITS : 0);
        for (let t = first; t < last; t++) {
          b.positions[b.nTokens] = step.positions[t]!;
          b.tokens[b.nTokens++] = step.tokens[t]!;
        }
        b.seqStart[++b.nSeqs] = b.nTokens;
        if (samples) pd.rowSource[r++] = -1 - target;
        continue;
      }
      sub.seqIds[sub.nSeqs] = id;
      for (let t = first; t < last; t++) {
        sub.positions[sub.nTokens] = step.positions[t]!;
        sub.tokens[sub.nTokens++] = step.tokens[t]!;
      }
      sub.seqStart[++sub.nSeqs] = sub.nTokens;
      if (samples) {
        pd.rowSource[r++] = sub.nLogits;
        sub.logitRows[sub.nLogits++] = sub.nTokens - 1;
      }
    }
    const V = this.config.vocabSize;
    const remote: Promise<Float32Array>[] = [];
    const remoteOf: number[] = [];
    batches.forEach((b, i) => {
      if (b.nSeqs === 0) return;
      remote.push(hybrid.instances[i]!.link.prefill(b, V));
      remoteOf.push(i);
    });
    const localRun = sub.nSeqs > 0 ? super.forward(ctx, sub, attention) : Promise.resolve(pd.logits);
    const results = await Promise.allSettled([localRun, ...remote]);
    const failed = results.findIndex((x) => x.status === "rejected");
    if (failed >= 0) {
      const reason = (results[failed] as PromiseRejectedResult).reason as Error;
      const link = failed > 0 ? hybrid.instances[remoteOf[failed - 1]!]!.link : null;
      if (link && !link.alive)
        throw new AttentionWorkerLostError(link.name, link.lostReason || reason.message);
      throw reason;
    }
    const localLogits = (results[0] as PromiseFulfilledResult<Float32Array>).value;
    // Each instance's reply holds its sampling rows in its batch order; map global remote rows to it.
    const replyOf = new Map<number, Float32Array>();
    remoteOf.forEach((i, j) => {
      replyOf.set(i, (results[j + 1] as PromiseFulfilledResult<Float32Array>).value);
    });
    const seen = new Int32Array(batches.length);
    for (let row = 0; row < step.nLogits; row++) {
      const src = pd.rowSource[row]!;
      if (src >= 0) {
        pd.logits.set(localLogits.subarray(src * V, (src + 1) * V), row * V);
      } else {
        const i = -1 - src;
        const j = seen[i]!++;
        pd.logits.set(replyOf.get(i)!.subarray(j * V, (j + 1) * V), row * V);
      }
    }
    for (let row = 0, s = 0; s < step.nSeqs && row < step.nLogits; s++) {
      if (step.logitRows[row] !== step.seqStart[s + 1]! - 1) continue;
      hybrid.prefillDone(step.seqIds[s]!);
      row++;
    }
    return pd.logits;
  }
}
