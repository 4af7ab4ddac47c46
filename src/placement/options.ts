import type { KvDType } from "../kernels/backend.js";
import type { OutputReserveOptions } from "../util/output-reserve.js";

/** Engine sizing knobs, with defaults that work on a small machine. */
export interface CoreOptions {
  readonly maxRunning?: number;
  readonly maxWaiting?: number;
  readonly maxTokensPerStep?: number;
  /** Cap on prompt + output tokens (default: the model's context). */
  readonly maxModelLen?: number;
  /** KV block size in tokens (default 16). */
  readonly blockSize?: number;
  /** KV memory budget in bytes (default 1 GiB), or an exact block count. */
  readonly kvMemory?: number;
  readonly kvBlocks?: number;
  /** KV precision (default: f32 for f32 models, f16 otherwise; int8 keeps a scale per token and KV head). */
  readonly kvDtype?: KvDType;
  /** Micro-batches in flight (staggered pipelining; default 1 in-process, 2 with attention workers). */
  readonly pipelineDepth?: number;
  /** KV reserved at admission for a request's future output (util/output-reserve.ts; default DEFAULT_OUTPUT_RESERVE). */
  readonly outputReserve?: OutputReserveOptions;
  /**
   * Reuse the KV of prompt prefixes already computed (whole blocks; default on). Not offered by
   * pd / adrenaline, whose prefill instances hold offloaded KV by tokens appended.
   */
  readonly prefixCaching?: boolean;
  /**
   * Speculative decoding by prompt lookup: draft tokens proposed per step for a decoding sequence
   * (engine/speculative.ts; 0: off; default 3 for a model of at least
   * SPECULATION_MIN_WEIGHT_BYTES, else off). Not offered where a draft's KV cannot be taken back
   * (pd / adrenaline).
   */
  readonly speculativeTokens?: number;
  /** Speculate only while at most this many sequences run. */
  readonly speculativeMaxRunning?: number;
}

/** Everything `createEngine` accepts: which model, which kernels, sizes, and placement. */
export interface EngineOptions extends CoreOptions {
  /** A Hugging Face directory, a llama2.c .bin, ORG/NAME on the Hub, or undefined/"demo" for the built-in demo model. */
  readonly model?: string;
  /** Tokenizer file for llama2.c checkpoints when it is not beside the .bin. */
  readonly tokenizerPath?: string;
  /** A chat template (Jinja text) in place of the model's own, or for a model without one. */
  readonly chatTemplate?: string;
  readonly backend?: "auto" | "native" | "reference";
  readonly threads?: number;
  /**
   * Weights in the 32-value block formats also packed 16 rows a vector for decode where the CPU has
   * that row path (default true; false: as stored only, half their memory), here and in spawned
   * model workers.
   */
  readonly weightPacking?: boolean;
  /** Id served as `model` in the API (default: derived from the model path). */
  readonly servedModelName?: string;
  /** Locally spawned attention workers (0 = in-process attention). */
  readonly attentionWorkers?: number;
  /**
   * Kernel threads of each spawned attention worker (default 1). With one micro-batch in flight
   * the model side waits while the worker computes, so the worker may take the cores it leaves.
   */
  readonly attentionWorkerThreads?: number;
  /**
   * Give each locally spawned attention worker cores of its own and bind this process's threads to
   * the rest, where the CPUs allow (default false: a library caller's process is left as it is;
   * `serve` and `generate` turn it on unless `--no-core-binding`).
   */
  readonly coreBinding?: boolean;
  /** Addresses host:port of running attention workers. */
  readonly attentionWorkerAddrs?: readonly string[];
  readonly attentionToken?: string;
  /**
   * Spin budget (µs) of shared-memory links, both ends: how long a side busy-polls before it sleeps
   * on a futex. Longer spins answer faster and cost CPU (reported as lamina_transport_poll_seconds_total).
   */
  readonly spinMicros?: number;
  /** Liveness: an attention worker (or prefill instance) silent this long on a layer is declared lost (default 5000 ms). */
  readonly attentionTimeoutMs?: number;
  readonly partition?: "head" | "request";
  readonly pipelineDepth?: number;
  /**
   * Model worker processes (Lamina's a): they run the slices, rotating over the micro-batches
   * (slice k of micro-batch j on worker (j + k) mod a), and exchange each layer with the attention
   * workers directly. Needs attention workers (spawned, over shared memory or TCP, or at addresses). Default depth a + 1.
   */
  readonly modelWorkers?: number;
  /**
   * Addresses host:port of running model workers (`lamina model-worker --listen`, with
   * `attentionToken` as the shared secret) instead of spawning them: one replica each. Over a
   * shared-memory plane they run on this host; with `modelPlane: "tcp"` anywhere. A lost one is
   * connected to again.
   */
  readonly modelWorkerAddrs?: readonly string[];
  /** Kernel threads of each model worker (default 1). */
  readonly modelWorkerThreads?: number;
  /**
   * The model workers' plane: "shm" (default), one shared segment, so they run on this host; "tcp",
   * each process keeps a copy and the writes the others must see travel as frames (model workers
   * on other hosts).
   */
  readonly modelPlane?: "shm" | "tcp";
  readonly transport?: "shm" | "tcp";
  /**
   * Placement of prefill: colocated (default), "pd" (prefill instances hand each prompt's KV to
   * this decode instance layer by layer) or "adrenaline" (pd, plus decode attention of some
   * requests offloaded to the prefill instances, KV and all). See src/pd.
   */
  readonly mode?: "colocated" | "pd" | "adrenaline";
  /** Locally spawned prefill instances (pd / adrenaline; default 1). */
  readonly prefillInstances?: number;
  /**
   * host:port of running `lamina prefill-instance` processes (pd / adrenaline), reached over TCP
   * with `attentionToken` as the shared secret; instead of spawning them.
   */
  readonly prefillInstanceAddrs?: readonly string[];
  /** Kernel threads a prefill instance gives prefill; its attention executor gets the rest. */
  readonly prefillThreads?: number;
  /**
   * TTFT target (ms) for the longest prompt: instead of a fixed `prefillThreads`, a spawned prefill
   * instance gives prefill the fewest threads whose measured speed meets it (Adrenaline's partition).
   */
  readonly prefillTtftMs?: number;
  /** KV budget of each prefill instance's attention executor (default: kvMemory). */
  readonly prefillKvMemory?: number;
  /** Fixed offloaded/kept request ratio N/M (adrenaline; default: the load-aware bound). */
  readonly offloadRatio?: number;
}
