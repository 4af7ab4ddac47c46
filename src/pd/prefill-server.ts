import type { KvAttention } from "../attention/kv-attention.js";
import type { AttentionService, AttentionStep, KvUsage } from "../attention/service.js";
import { AttentionWorkerSession } from "../attention/worker-session.js";
import { sliceModel } from "../graph/converter.js";
import { buildLlamaGraph } from "../graph/llama-graph.js";
import type { KernelBackend } from "../kernels/backend.js";
import type { LoadedModel } from "../model/types.js";
import { SliceExecutor } from "../runtime/executor.js";
import { createModelStep, type ModelStep } from "../runtime/step.js";
import type { Channel } from "../transport/channel.js";
import type { ReceivedMessage, WireTensor } from "../transport/message.js";
import { errorReply } from "../transport/rpc.js";
import { splitChannel } from "./mux-channel.js";
import { isPdType, PdMsgType, PrefillFlag } from "./protocol.js";

export interface PrefillServerOptions {
  /** KV budget of the attention executor (offloaded requests' KV and prefill scratch). */
  readonly kvMemory: number;
  readonly log: (line: string) => void;
}

/**
 * A prefill instance's side of one decode-instance connection: an attention executor (the
 * attention-worker session, unchanged: it serves the offloaded requests' decode attention) and a
 * prefill executor that writes the prompt's KV straight into that executor's cache. KV of
 * requests that are not kept is streamed to the decode instance layer by layer as it is made.
 *
 * Prefill and the executor share this process's event loop: prefill yields after every layer, so
 * offloaded decode attention waits at most one prefill layer.
 */
export class PrefillServer {
  readonly session: AttentionWorkerSession;
  private readonly pd: Channel;
  private readonly executor: SliceExecutor;
  private readonly step: ModelStep;
  private queue: Promise<void> = Promise.resolve();
  private handoff: KvHandoff | null = null;
  /** Prefill tokens computed, and seconds spent (for the compute-partition report). */
  prefillTokens = 0;
  prefillSeconds = 0;

  constructor(
    channel: Channel,
    private readonly model: LoadedModel,
    prefillBackend: KernelBackend,
    attentionBackend: KernelBackend,
    options: PrefillServerOptions,
    maxTokens: number,
  ) {
    const [attention, pd] = splitChannel(channel, isPdType);
    this.session = new AttentionWorkerSession(attention, attentionBackend, options);
    this.pd = pd;
    this.executor = new SliceExecutor(
      sliceModel(buildLlamaGraph(model.config)),
      model.weights,
      prefillBackend,
      model.config,
      { maxTokens, maxLogitRows: maxTokens, microBatches: 1 },
    );
    // One prefill at a time: a single micro-batch of the prefill executor.
    this.step = createModelStep(maxTokens, maxTokens, 0);
    pd.onMessage((m) => this.onMessage(m));
  }

  /** The attention executor's KV cache (made when the decode instance configures it). */
  private cache(): KvAttention {
    // The session owns its cache; prefill writes into the same one (one KV store per connection).
    const kv = this.session.cache;
    if (!kv) throw new Error("prefill before the attention executor was configured");
    return kv;
  }

  private onMessage(m: ReceivedMessage): void {
    if (m.type !== PdMsgType.PREFILL) throw new Error(`unknown prefill message type ${m.type}`);
    let job: PrefillJob;
    try {
      job = parsePrefill(m, this.cache(), this.model.config.vocabSize);
    } catch (e) {
      void this.pd.send(errorReply(m, (e as Error).message));
      return;
    }
    // One prefill at a time: they share the executor's activation buffers.
    this.queue = this.queue.then(() =>
      this.run(job).then(
        (logits) =>
          this.pd.send({
            type: PdMsgType.PREFILL,
            requestId: job.requestId,
            tensors: [{ dtype: "f32", shape: [logits.length], data: logits }],
          }),
        (e: Error) => this.pd.send(errorReply(m, `prefill failed: ${e.message}`)),
      ),
    );
  }

  private async run(job: PrefillJob): Promise<Float32Array> {
    const kv = this.cache();
    const g = kv.geometry;
    const step = this.step;
    step.nSeqs = job.nSeqs;
    step.nTokens = job.nTokens;
    step.seqIds.set(job.seqIds);
    step.seqStart.set(job.seqStart);
    step.positions.set(job.positions);
    step.tokens.set(job.tokens);
    step.nLogits = 0;
    for (let s = 0; s < job.nSeqs; s++)
      if (job.flags[s]! & PrefillFlag.LOGITS) step.logitRows[step.nLogits++] = job.seqStart[s + 1]! - 1;
    this.handoff ??= new KvHandoff(this.pd, g.numKvHeads * g.headDim, this.executor.limits.maxTokens);
    const handoff = this.handoff;
    handoff.start(job);
    const t0 = performance.now();
    const logits = await this.executor.forward(step, new ExecutorCacheAttention(kv, handoff, step));
    this.prefillSeconds += (performance.now() - t0) / 1000;
    this.prefillTokens += job.nTokens;
    return logits.slice(0, step.nLogits * this.model.config.vocabSize);
  }
}

/** One PREFILL request, copied out of the transport's buffers. */
export interface PrefillJob {
  readonly requestId: number;
  readonly nSeqs: number;
  readonly nTokens: number;
  readonly seqIds: Int32Array;
  readonly seqStart: Int32Array;
  readonly positions: Int32Array;
  readonly tokens: Int32Array;
  readonly flags: Int32Array;
}

function parsePrefill(m: ReceivedMessage, kv: KvAttention, vocab: number): PrefillJob {
  need(m.ints.length === 2, "PREFILL needs [nSeqs, nTokens]");
  const [nSeqs, nTokens] = [m.ints[0]!, m.ints[1]!];
  const g = kv.geometry;
  need(nTokens >= 1 && nTokens <= g.maxTokens, `PREFILL of ${nTokens} tokens exceeds ${g.maxTokens}`);
  need(nSeqs >= 1 && nSeqs <= nTokens, `PREFILL of ${nSeqs} sequences is out of range`);
  const ints = (i: number, n: number): Int32Array => {
    const t: WireTensor | undefined = m.tensors[i];
    need(t?.dtype === "i32" && t.data.length === n, `PREFILL tensor ${i} must be ${n} i32`);
    return (t!.data as Int32Array).slice();
  };
  const job: PrefillJob = {
    requestId: m.requestId,
    nSeqs,
    nTokens,
    seqIds: ints(0, nSeqs),
    seqStart: ints(1, nSeqs + 1),
    positions: ints(2, nTokens),
    tokens: ints(3, nTokens),
    flags: ints(4, nSeqs),
  };
  need(job.seqStart[0] === 0 && job.seqStart[nSeqs] === nTokens, "PREFILL seqStart must run 0..nTokens");
  for (let s = 0; s < nSeqs; s++) {
    need(job.seqStart[s]! < job.seqStart[s + 1]!, "PREFILL seqStart must increase");
    const table = kv.allocator.table(job.seqIds[s]!);
    const last = job.positions[job.seqStart[s + 1]! - 1]!;
    need(!!table && table.length * g.blockSize > last, `sequence ${job.seqIds[s]} has no KV reserved`);
  }
  for (let i = 0; i < nTokens; i++) {
    need(job.positions[i]! >= 0 && job.positions[i]! < g.maxContext, "PREFILL position out of range");
    need(job.tokens[i]! >= 0 && job.tokens[i]! < vocab, "PREFILL token outside the vocabulary");
  }
  return job;
}

/**
 * Sends each layer's KV of the sequences that are not kept here, as soon as the layer is done.
 * Buffers are sized once for the largest step and reused by every job. (Exported for the
 * calibration, which times it: the prefill instance's thread pays it between prefill layers.)
 */
export class KvHandoff {
  private readonly rows: Int32Array;
  private readonly rowSeq: Int32Array;
  private readonly rowPos: Int32Array;
  private readonly k: Float32Array;
  private readonly v: Float32Array;
  private n = 0;

  constructor(
    private readonly channel: Channel,
    private readonly width: number,
    maxTokens: number,
  ) {
    this.rows = new Int32Array(maxTokens);
    this.rowSeq = new Int32Array(maxTokens);
    this.rowPos = new Int32Array(maxTokens);
    this.k = new Float32Array(maxTokens * width);
    this.v = new Float32Array(maxTokens * width);
  }

  /** Picks the rows of `job` whose KV goes back to the decode instance. */
  start(job: PrefillJob): void {
    let r = 0;
    for (let s = 0; s < job.nSeqs; s++) {
      if (job.flags[s]! & PrefillFlag.KEEP) continue;
      for (let t = job.seqStart[s]!; t < job.seqStart[s + 1]!; t++) {
        this.rows[r] = t;
        this.rowSeq[r] = job.seqIds[s]!;
        this.rowPos[r++] = job.positions[t]!;
      }
    }
    this.n = r;
  }

  async layerDone(layer: number, k: Float32Array, v: Float32Array): Promise<void> {
    const n = this.n;
    if (n === 0) return;
    const w = this.width;
    for (let r = 0; r < n; r++) {
      const src = this.rows[r]! * w;
      for (let i = 0; i < w; i++) {
        this.k[r * w + i] = k[src + i]!;
        this.v[r * w + i] = v[src + i]!;
      }
    }
    // Awaited: the buffers are reused by the next layer.
    await this.channel.send({
      type: PdMsgType.KV_LAYER,
      ints: [layer, n],
      tensors: [
        { dtype: "i32", shape: [n], data: this.rowSeq.subarray(0, n) },
        { dtype: "i32", shape: [n], data: this.rowPos.subarray(0, n) },
        { dtype: "f32", shape: [n * w], data: this.k.subarray(0, n * w) },
        { dtype: "f32", shape: [n * w], data: this.v.subarray(0, n * w) },
      ],
    });
  }
}

/**
 * Prefill's attention: the executor's own cache (in-process), plus the layer-by-layer handoff and
 * a yield after every layer so the attention executor's requests run in between.
 */
class ExecutorCacheAttention implements AttentionService {
  readonly description = "prefill instance cache";
  private q: Float32Array | null = null;
  /**
   * The prefill step as the shared cache sees it: a micro-batch id of its own, so its prepared
   * block tables never mix with those of the attention executor's micro-batches (0, 1, …).
   */
  private readonly view: AttentionStep;

  constructor(
    private readonly kv: KvAttention,
    private readonly handoff: KvHandoff,
    step: AttentionStep,
  ) {
    this.view = {
      microBatch: PREFILL_MICRO_BATCH,
      nTokens: step.nTokens,
      nSeqs: step.nSeqs,
      seqIds: step.seqIds,
      seqStart: step.seqStart,
      positions: step.positions,
    };
  }

  get blockSize(): number {
    return this.kv.geometry.blockSize;
  }
  reserve(): boolean {
    throw new Error("prefill reserves through the decode instance");
  }
  release(): void {}
  usage(): readonly KvUsage[] {
    return [];
  }

  beginLayer(layer: number, _step: AttentionStep, q: Float32Array): void {
    if (layer === 0) this.kv.prepare(this.view);
    this.q = q;
  }

  async finishLayer(
    layer: number,
    _step: AttentionStep,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
  ): Promise<void> {
    this.kv.run(layer, this.view, this.q!, k, v, out);
    await handOffLayer(this.handoff, layer, k, v);
  }

  async close(): Promise<void> {}
}

/**
 * What the prefill instance does after each prefill layer: hand the layer's KV back, then yield so
 * the attention executor's requests run in between.
 */
export async function handOffLayer(
  handoff: KvHandoff,
  layer: number,
  k: Float32Array,
  v: Float32Array,
): Promise<void> {
  await handoff.layerDone(layer, k, v);
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** The prefill executor's key in the shared cache, apart from the decode side's micro-batches. */
const PREFILL_MICRO_BATCH = -1;

function need(ok: boolean, what: string): void {
  if (!ok) throw new Error(`prefill protocol: ${what}`);
}
