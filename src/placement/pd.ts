import { availableParallelism } from "node:os";
import { KvAttention } from "../attention/kv-attention.js";
import { RemoteAttentionService } from "../attention/remote-service.js";
import type { SlicedModel } from "../graph/converter.js";
import type { KernelBackend } from "../kernels/backend.js";
import type { LoadedModel } from "../model/types.js";
import { HybridAttentionService, type PrefillInstance } from "../pd/hybrid-attention.js";
import { PdExecutor } from "../pd/pd-executor.js";
import { PrefillLink } from "../pd/prefill-link.js";
import { prefillThreadSplit } from "../pd/thread-share.js";
import type { Channel } from "../transport/channel.js";
import { AddressedWorker } from "./attention-worker-endpoints.js";
import type { EngineOptions } from "./options.js";
import { choosePartition, measurePrefillChunk } from "./prefill-partition.js";
import { DEFAULT_KV_MEMORY, type EngineSizes } from "./sizes.js";
import { SpawnedPrefillInstance } from "./spawn-prefill-instance.js";
import { attentionToken } from "./validate.js";

/** The liveness bound of a PREFILL, in multiples of the per-layer attention bound. */
const PREFILL_REPLIES = 4;
const DEFAULT_ATTENTION_TIMEOUT_MS = 5_000;

/** How the decode instance reaches prefill instance i (tests serve them in-process). */
export type PrefillOpener = (i: number) => { open: () => Promise<Channel>; pid?: () => number | undefined };

/** The decode instance of a PD or Adrenaline placement: its executor and hybrid attention. */
export interface PdPlacement {
  readonly executor: PdExecutor;
  readonly attention: HybridAttentionService;
}

interface PdContext {
  readonly model: LoadedModel;
  readonly backend: KernelBackend;
  readonly sliced: SlicedModel;
  readonly sizes: EngineSizes;
  readonly options: EngineOptions;
  readonly microBatches: number;
  readonly log: (line: string) => void;
  readonly opener?: PrefillOpener | undefined;
}

/**
 * Builds the decode instance of a PD or Adrenaline placement: its own KV cache and executor,
 * connected to its prefill instances (spawned here, at addresses, or opened by `opener`).
 */
export async function buildPdPlacement(c: PdContext): Promise<PdPlacement> {
  const o = c.options;
  const mode = o.mode === "adrenaline" ? "adrenaline" : "pd";
  const addrs = o.prefillInstanceAddrs ?? [];
  const n = addrs.length > 0 ? addrs.length : (o.prefillInstances ?? 1);
  const split = await threadSplit(c);
  const local = new KvAttention(c.backend, c.sizes.geometry, c.sizes.numBlocks);
  const instances: PrefillInstance[] = [];
  try {
    for (let i = 0; i < n; i++) instances.push(await connectInstance(c, i, local, split));
  } catch (e) {
    for (const x of instances) await x.link.close();
    throw e;
  }
  const attention = new HybridAttentionService(local, instances, {
    mode,
    offloadRatio: o.offloadRatio ?? null,
    maxBatch: c.sizes.maxRunning,
    decodeThreads: o.threads ?? availableParallelism(),
    microBatches: c.microBatches,
  });
  const executor = new PdExecutor(
    c.sliced,
    c.model.weights,
    c.backend,
    c.model.config,
    { maxTokens: c.sizes.maxTokensPerStep, maxLogitRows: c.sizes.maxRunning, microBatches: c.microBatches },
    attention,
  );
  c.log(
    addrs.length > 0
      ? `${mode}: decode instance with ${c.sizes.numBlocks} KV blocks; prefill instances at ${addrs.join(", ")} (offload bound assumes each gives its attention executor ${split.attention} thread(s))`
      : `${mode}: decode instance with ${c.sizes.numBlocks} KV blocks; ${n} prefill instance(s), each prefill ${split.prefill} thread(s) + attention executor ${split.attention}`,
  );
  return { executor, attention };
}

type ThreadSplit = { prefill: number; attention: number };

/** Prefill instance i: its link (spawned, addressed or opened) and its attention executor. */
async function connectInstance(
  c: PdContext,
  i: number,
  local: KvAttention,
  split: ThreadSplit,
): Promise<PrefillInstance> {
  const o = c.options;
  const addr = o.prefillInstanceAddrs?.[i];
  // A prefill instance at an address is reached exactly as an attention worker there is.
  const addressed = addr ? AddressedWorker.parse(addr, attentionToken(o)!, c.log) : null;
  const how =
    c.opener?.(i) ?? (addressed ? { open: () => addressed.connect() } : null) ?? spawnInstance(c, i, split);
  // A prefill step runs whole layers of prompt chunks: give it several layers' worth of the bound.
  const prefillBound = PREFILL_REPLIES * (o.attentionTimeoutMs ?? DEFAULT_ATTENTION_TIMEOUT_MS);
  const link = new PrefillLink(`prefill-${i}`, how.open, local, how.pid, prefillBound);
  const remote = await RemoteAttentionService.connect([link.endpoint], {
    partition: "request",
    geometry: c.sizes.geometry,
    kvMemory: o.prefillKvMemory ?? o.kvMemory ?? null,
    microBatches: c.microBatches,
    ...(o.attentionTimeoutMs !== undefined ? { replyTimeoutMs: o.attentionTimeoutMs } : {}),
    // A prefill instance runs its own model on the same kernels and KV cache: its share of the
    // decode attention stays on messages, which its event loop interleaves with prefill.
    dataPlane: false,
    log: c.log,
  });
  return { link, remote, attentionThreads: split.attention };
}

function spawnInstance(c: PdContext, i: number, split: ThreadSplit) {
  const o = c.options;
  const s = new SpawnedPrefillInstance(
    `prefill-${i}`,
    {
      ...(o.model ? { model: o.model } : {}),
      ...(o.tokenizerPath ? { tokenizerPath: o.tokenizerPath } : {}),
      backend: o.backend ?? "auto",
      kvMemory: o.prefillKvMemory ?? o.kvMemory ?? DEFAULT_KV_MEMORY,
      prefillThreads: split.prefill,
      attentionThreads: split.attention,
      maxTokens: c.sizes.maxTokensPerStep,
    },
    c.log,
  );
  return { open: () => s.open(), pid: () => s.pid };
}

/**
 * The prefill/attention-executor thread split of a prefill instance: fixed, or (with
 * --prefill-ttft-ms) Adrenaline's compute partition measured here with the decode side's kernels.
 */
async function threadSplit(c: PdContext): Promise<ThreadSplit> {
  const o = c.options;
  const cores = availableParallelism();
  if (o.prefillTtftMs === undefined) return prefillThreadSplit(cores, o.prefillThreads);
  const { sizes } = c;
  const chunk = Math.min(sizes.maxTokensPerStep, sizes.maxContext - 1);
  const timings = await measurePrefillChunk(
    c.model,
    c.backend,
    chunk,
    Math.max(1, cores - 1),
    o.threads ?? cores,
  );
  const p = choosePartition(timings, cores, sizes.maxContext - 1, chunk, o.prefillTtftMs / 1000);
  const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`;
  c.log(
    `prefill partition for a ${o.prefillTtftMs} ms TTFT target (prompt of ${sizes.maxContext - 1} tokens): ` +
      `${p.prefillThreads} prefill thread(s), ${p.attentionThreads} for the attention executor; predicted TTFT ${ms(p.predictedTtftS)}` +
      `${p.meetsTarget ? "" : " (target not reachable: fastest split taken)"}; chunk of ${chunk} tokens: ` +
      p.timings.map((t) => `${t.threads}t ${ms(t.seconds)}`).join(", "),
  );
  return { prefill: p.prefillThreads, attention: p.attentionThreads };
}
