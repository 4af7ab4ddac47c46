import { availableParallelism } from "node:os";
import { KvAttention } from "../attention/kv-attention.js";
import { RemoteAttentionService } from "../attention/remote-service.js";
import { AddressedWorker } from "../attention/spawn.js";
import { DEFAULT_KV_MEMORY, resolveSizes } from "../engine/build-core.js";
import { EngineCore } from "../engine/engine-core.js";
import type { EngineOptions } from "../engine/options.js";
import { sliceModel } from "../graph/converter.js";
import { buildLlamaGraph } from "../graph/llama-graph.js";
import type { KernelBackend } from "../kernels/backend.js";
import type { LoadedModel } from "../model/types.js";
import type { Channel } from "../transport/channel.js";
import { HybridAttentionService, type PrefillInstance } from "./hybrid-attention.js";
import { PdExecutor } from "./pd-executor.js";
import { PrefillLink } from "./prefill-link.js";
import { choosePartition, measurePrefillChunk } from "./prefill-partition.js";
import { SpawnedPrefillInstance } from "./spawn.js";
import { prefillThreadSplit } from "./thread-share.js";

/** How the decode instance reaches prefill instance i (tests serve them in-process). */
export type PrefillOpener = (i: number) => { open: () => Promise<Channel>; pid?: () => number | undefined };

/**
 * Builds the decode instance of a PD or Adrenaline placement: its executor and own KV cache,
 * connected to `prefillInstances` prefill instances (spawned locally unless `opener` says how).
 */
export async function buildPdEngineCore(
  model: LoadedModel,
  backend: KernelBackend,
  o: EngineOptions,
  log: (line: string) => void = () => {},
  opener?: PrefillOpener,
): Promise<{ core: EngineCore; attention: HybridAttentionService }> {
  const mode = o.mode === "adrenaline" ? "adrenaline" : "pd";
  const sizes = resolveSizes(model, o);
  const addrs = o.prefillInstanceAddrs ?? [];
  if (addrs.length > 0 && o.prefillInstances !== undefined)
    throw new Error("use either --prefill-instances or --prefill-instance-addrs, not both");
  const n = addrs.length > 0 ? addrs.length : (o.prefillInstances ?? 1);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--prefill-instances must be at least 1 (got ${n})`);
  const token = o.attentionToken ?? process.env.LAMINA_ATTENTION_TOKEN;
  if (addrs.length > 0 && !opener && !token)
    throw new Error(
      "prefill instances at given addresses need the shared secret: --attention-token or LAMINA_ATTENTION_TOKEN",
    );
  if (o.offloadRatio !== undefined && (!(o.offloadRatio >= 0) || mode !== "adrenaline"))
    throw new Error("--offload-ratio needs --mode adrenaline and a ratio ≥ 0");
  let split = prefillThreadSplit(availableParallelism(), o.prefillThreads);
  if (o.prefillTtftMs !== undefined) {
    if (o.prefillThreads !== undefined)
      throw new Error("use either --prefill-threads or --prefill-ttft-ms, not both");
    if (!(o.prefillTtftMs > 0))
      throw new Error(`--prefill-ttft-ms must be positive (got ${o.prefillTtftMs})`);
    // Prefill instances run on this machine's cores: measure here, with the decode instance's kernels.
    const cores = availableParallelism();
    const chunk = Math.min(sizes.maxTokensPerStep, sizes.maxContext - 1);
    const timings = await measurePrefillChunk(
      model,
      backend,
      chunk,
      Math.max(1, cores - 1),
      o.threads ?? cores,
    );
    const c = choosePartition(timings, cores, sizes.maxContext - 1, chunk, o.prefillTtftMs / 1000);
    split = { prefill: c.prefillThreads, attention: c.attentionThreads };
    const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`;
    log(
      `prefill partition for a ${o.prefillTtftMs} ms TTFT target (prompt of ${sizes.maxContext - 1} tokens): ` +
        `${c.prefillThreads} prefill thread(s), ${c.attentionThreads} for the attention executor; predicted TTFT ${ms(c.predictedTtftS)}` +
        `${c.meetsTarget ? "" : " (target not reachable: fastest split taken)"}; chunk of ${chunk} tokens: ` +
        c.timings.map((t) => `${t.threads}t ${ms(t.seconds)}`).join(", "),
    );
  }
  const local = new KvAttention(backend, sizes.geometry, sizes.numBlocks);
  const depth = o.pipelineDepth ?? 1;
  const instances: PrefillInstance[] = [];
  try {
    for (let i = 0; i < n; i++) {
      // A prefill instance at an address is reached exactly as an attention worker there is.
      const addressed = addrs[i] ? AddressedWorker.parse(addrs[i]!, token!, log) : null;
      const how =
        opener?.(i) ??
        (addressed ? { open: () => addressed.connect() } : null) ??
        (() => {
          const s = new SpawnedPrefillInstance(
            `prefill-${i}`,
            {
              ...(o.model ? { model: o.model } : {}),
              ...(o.tokenizerPath ? { tokenizerPath: o.tokenizerPath } : {}),
              backend: o.backend ?? "auto",
              kvMemory: o.prefillKvMemory ?? o.kvMemory ?? DEFAULT_KV_MEMORY,
              prefillThreads: split.prefill,
              attentionThreads: split.attention,
              maxTokens: sizes.maxTokensPerStep,
            },
            log,
          );
          return { open: () => s.open(), pid: () => s.pid };
        })();
      const link = new PrefillLink(`prefill-${i}`, how.open, local, how.pid);
      const remote = await RemoteAttentionService.connect([link.endpoint], {
        partition: "request",
        geometry: sizes.geometry,
        kvMemory: o.prefillKvMemory ?? o.kvMemory ?? null,
        maxTags: depth,
        log,
      });
      instances.push({ link, remote, attentionThreads: split.attention });
    }
  } catch (e) {
    for (const x of instances) await x.link.close();
    throw e;
  }
  const attention = new HybridAttentionService(local, instances, {
    mode,
    offloadRatio: o.offloadRatio ?? null,
    maxBatch: sizes.maxRunning,
    decodeThreads: o.threads ?? availableParallelism(),
  });
  const executor = new PdExecutor(
    sliceModel(buildLlamaGraph(model.config)),
    model.weights,
    backend,
    model.config,
    {
      maxTokens: sizes.maxTokensPerStep,
      maxLogitRows: sizes.maxRunning,
    },
  );
  executor.attach(attention);
  const eos = new Set<number>([
    ...(model.generation.eosTokenIds ?? model.config.eosTokenIds),
    ...model.tokenizer.eosTokenIds,
  ]);
  const core = new EngineCore(executor, attention, model.tokenizer, {
    maxRunning: sizes.maxRunning,
    maxWaiting: sizes.maxWaiting,
    maxTokensPerStep: sizes.maxTokensPerStep,
    maxContext: sizes.maxContext,
    eosTokenIds: [...eos],
    vocabSize: model.config.vocabSize,
    pipelineDepth: depth,
  });
  log(
    addrs.length > 0
      ? `${mode}: decode instance with ${sizes.numBlocks} KV blocks; prefill instances at ${addrs.join(", ")} (offload bound assumes each gives its attention executor ${split.attention} thread(s))`
      : `${mode}: decode instance with ${sizes.numBlocks} KV blocks; ${n} prefill instance(s), each prefill ${split.prefill} thread(s) + attention executor ${split.attention}`,
  );
  return { core, attention };
}
