import { type AttentionService, AttentionWorkerLostError } from "../attention/service.js";
import { copySeqs, SubStep, splitStep } from "../attention/sub-step.js";
import type { SlicedModel } from "../graph/converter.js";
import type { KernelBackend } from "../kernels/backend.js";
import type { ModelConfig } from "../model/config.js";
import type { WeightStore } from "../model/types.js";
import { type ExecutorLimits, SliceExecutor } from "../runtime/executor.js";
import { createModelStep, type ModelStep } from "../runtime/step.js";
import type { HybridAttentionService } from "./hybrid-attention.js";
import { createPrefillBatch, type PrefillBatch } from "./prefill-link.js";
import { PrefillFlag } from "./protocol.js";

/** Per micro-batch: the decode instance's share of the step, the prefill batches, and logits. */
interface PdBatch {
  /** parts[0]: the decode instance's own sequences; parts[1 + i]: those prefilled on instance i. */
  readonly parts: SubStep[];
  readonly local: ModelStep;
  readonly prefill: PrefillBatch[];
  /** For each logit row of the step: local sub-step row (≥ 0) or -(1 + instance). */
  readonly rowSource: Int32Array;
  readonly logits: Float32Array;
  /** Per instance: a running count of its sequences or sampling rows (scratch). */
  readonly seen: Int32Array;
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
  private readonly pdBatches: PdBatch[];

  constructor(
    sliced: SlicedModel,
    weights: WeightStore,
    backend: KernelBackend,
    config: ModelConfig,
    limits: ExecutorLimits,
    private readonly hybrid: HybridAttentionService,
  ) {
    super(sliced, weights, backend, config, limits);
    const { maxTokens, maxLogitRows } = limits;
    const n = hybrid.instances.length;
    this.pdBatches = Array.from({ length: limits.microBatches }, (_, mb) => ({
      parts: Array.from({ length: n + 1 }, () => new SubStep(maxTokens, maxLogitRows)),
      local: createModelStep(maxTokens, maxLogitRows, mb),
      prefill: Array.from({ length: n }, () => createPrefillBatch(maxTokens, maxLogitRows)),
      rowSource: new Int32Array(maxLogitRows),
      logits: new Float32Array(maxLogitRows * config.vocabSize),
      seen: new Int32Array(n),
    }));
  }

  override async forward(step: ModelStep, attention: AttentionService): Promise<Float32Array> {
    const pd = this.pdBatches[step.microBatch];
    if (!pd)
      throw new Error(`micro-batch ${step.microBatch} is outside the executor's ${this.pdBatches.length}`);
    this.route(step, pd);
    const V = this.config.vocabSize;
    const remoteOf: number[] = [];
    const remote: Promise<Float32Array>[] = [];
    // The prefill instances' chunks go out first: with no offloaded rows the local pass never
    // waits, so it runs to its end before anything after it is sent (prefill would then start
    // only when the decode instance's own rows are done, the two in series instead of side by side).
    pd.prefill.forEach((b, i) => {
      if (b.nSeqs === 0) return;
      remote.push(this.hybrid.instances[i]!.link.prefill(b, V));
      remoteOf.push(i);
    });
    const local = pd.local.nSeqs > 0 ? super.forward(pd.local, attention) : Promise.resolve(pd.logits);
    const results = await Promise.allSettled([local, ...remote]);
    const replies = this.settled(results, remoteOf);
    this.mergeLogits(step, pd, replies);
    for (let row = 0, s = 0; s < step.nSeqs && row < step.nLogits; s++) {
      if (step.logitRows[row] !== step.seqStart[s + 1]! - 1) continue;
      this.hybrid.prefillDone(step.seqIds[s]!);
      row++;
    }
    return pd.logits;
  }

  /** Splits the step: sequences whose prompt a prefill instance holds go there, the rest stay. */
  private route(step: ModelStep, pd: PdBatch): void {
    const hybrid = this.hybrid;
    splitStep(step, (id) => 1 + hybrid.prefillTarget(id), pd.parts);
    const local = pd.local;
    copySeqs(local, pd.parts[0]!);
    local.nLogits = 0;
    for (let i = 0; i < pd.prefill.length; i++) this.fillPrefill(pd.prefill[i]!, pd.parts[1 + i]!);
    // Logit rows, in the step's order: each names where its logits will come from. Sequences were
    // appended to their parts in step order, so a running count gives each one's index there.
    const count = pd.seen;
    count.fill(0);
    let ownIdx = 0;
    let r = 0;
    for (let s = 0; s < step.nSeqs; s++) {
      const target = hybrid.prefillTarget(step.seqIds[s]!);
      const idx = target >= 0 ? count[target]!++ : ownIdx++;
      if (r >= step.nLogits || step.logitRows[r] !== step.seqStart[s + 1]! - 1) continue;
      if (target >= 0) {
        pd.prefill[target]!.flags[idx]! |= PrefillFlag.LOGITS;
        pd.rowSource[r++] = -1 - target;
      } else {
        pd.rowSource[r++] = local.nLogits;
        local.logitRows[local.nLogits++] = local.seqStart[idx + 1]! - 1;
      }
    }
  }

  private fillPrefill(b: PrefillBatch, part: SubStep): void {
    copySeqs(b, part);
    for (let s = 0; s < part.nSeqs; s++)
      b.flags[s] = this.hybrid.isOffloaded(part.seqIds[s]!) ? PrefillFlag.KEEP : 0;
  }

  /** The local logits and each instance's reply, or the first failure (a lost instance named). */
  private settled(
    results: PromiseSettledResult<Float32Array>[],
    remoteOf: readonly number[],
  ): { local: Float32Array; remote: Map<number, Float32Array> } {
    const failed = results.findIndex((x) => x.status === "rejected");
    if (failed >= 0) {
      const reason = (results[failed] as PromiseRejectedResult).reason as Error;
      const link = failed > 0 ? this.hybrid.instances[remoteOf[failed - 1]!]!.link : null;
      if (link && !link.alive)
        throw new AttentionWorkerLostError(link.name, link.lostReason || reason.message);
      throw reason;
    }
    const value = (j: number) => (results[j] as PromiseFulfilledResult<Float32Array>).value;
    const remote = new Map<number, Float32Array>();
    for (let j = 0; j < remoteOf.length; j++) remote.set(remoteOf[j]!, value(j + 1));
    return { local: value(0), remote };
  }

  /** Each instance's reply holds its sampling rows in its batch order; map the step's rows to them. */
  private mergeLogits(
    step: ModelStep,
    pd: PdBatch,
    replies: { local: Float32Array; remote: Map<number, Float32Array> },
  ): void {
    const V = this.config.vocabSize;
    const seen = pd.seen;
    seen.fill(0);
    for (let row = 0; row < step.nLogits; row++) {
      const src = pd.rowSource[row]!;
      if (src >= 0) {
        pd.logits.set(replies.local.subarray(src * V, (src + 1) * V), row * V);
      } else {
        const i = -1 - src;
        const j = seen[i]!++;
        pd.logits.set(replies.remote.get(i)!.subarray(j * V, (j + 1) * V), row * V);
      }
    }
  }
}
