import { existsSync, readFileSync } from "node:fs";
import { type Command, InvalidArgumentError } from "commander";
import { DEFAULT_SPECULATION } from "../engine/speculative.js";
import type { KvDType } from "../kernels/backend.js";
import { KV_DTYPES } from "../kernels/kv-cache.js";
import type { EngineOptions } from "../placement/options.js";
import { DEFAULT_BLOCK_SIZE } from "../placement/sizes.js";
import {
  checkOutputReserve,
  NAMED_OUTPUT_RESERVES,
  type OutputReserveOptions,
} from "../util/output-reserve.js";
import { addrListArg, choiceArg, intArg, sizeArg } from "./parse.js";

/**
 * Flags shared by every command that runs the engine (`serve`, `generate`): which model, which
 * kernels, sizes, and the placement of attention, so any placement can be tried from the CLI.
 */
export function addEngineFlags(cmd: Command): Command {
  addModelFlags(cmd)
    .option(
      "--backend <name>",
      "kernels: auto, native or reference",
      choiceArg(["auto", "native", "reference"] as const),
      "auto",
    )
    .option("--threads <n>", "kernel threads (default: all cores)", intArg(1, 1024))
    .option(
      "--no-weight-packing",
      "keep weights in the 32-value block formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL) as stored only (by default, on CPUs with AVX2, the kernels also hold a copy packed 16 rows a vector, which decodes faster for as much memory again)",
    )
    .option("--kv-memory <size>", "KV cache budget per attention instance, e.g. 512MiB", sizeArg)
    .option("--block-size <n>", `KV block size in tokens (default: ${DEFAULT_BLOCK_SIZE})`, intArg(1, 1024))
    .option(
      "--kv-dtype <dtype>",
      "KV cache element type, on attention workers and prefill instances too: f32, f16, bf16, or int8 (a scale per token and KV head; block size a multiple of 4) (default: the model's own float type, f32, bf16 or f16; f16 for a model in a block format)",
      choiceArg(KV_DTYPES),
    )
    .option("--max-model-len <n>", "cap on prompt + output tokens", intArg(2))
    .option("--max-running <n>", "sequences batched at once", intArg(1, 4096))
    .option(
      "--output-reserve <spec>",
      "KV held at admission for a share of each request's remaining output: default (1 after a preemption, falling by 0.002 a step to 0.1), none (the current tokens held, nothing for output), or INITIAL,MIN,DECAY",
      outputReserveArg,
    )
    .option(
      "--attention-workers <n>",
      "locally spawned attention workers (0 = in-process attention)",
      intArg(0, 64),
    )
    .option(
      "--attention-worker-threads <n>",
      "kernel threads of each spawned attention worker (default 1)",
      intArg(1, 1024),
    )
    .option(
      "--no-core-binding",
      "leave the CPUs of spawned attention workers and of this process to the scheduler (by default each spawned worker gets cores of its own and this process's threads the rest, where the CPUs allow)",
    )
    .option(
      "--attention-worker-addrs <list>",
      "host:port of running attention workers, comma-separated",
      addrListArg,
    )
    .option(
      "--attention-token <secret>",
      "shared secret for attention workers and prefill instances at addresses (or LAMINA_ATTENTION_TOKEN)",
    )
    .option(
      "--spin-us <µs>",
      "shared-memory links and the native data plane: busy-poll this long before sleeping (CPU for latency; defaults: channels 50, the engine's layer wait 200, a worker's data-plane loop 1000)",
      intArg(0, 1_000_000),
    )
    .option(
      "--attention-timeout-ms <ms>",
      "declare an attention worker or prefill instance lost when a layer gets no reply this long (default 5000)",
      intArg(1),
    )
    .option(
      "--partition <how>",
      "split KV across attention workers by head or request",
      choiceArg(["head", "request"] as const),
    )
    .option("--pipeline-depth <n>", "micro-batches in flight (staggered pipelining)", intArg(1, 16))
    .option(
      "--transport <kind>",
      "to local attention workers: shm or tcp",
      choiceArg(["shm", "tcp"] as const),
    );
  return addModelWorkerFlags(addReuseFlags(addPrefillFlags(cmd)));
}

/** PD and Adrenaline: where prefill runs, and how much decode attention goes to it. */
function addPrefillFlags(cmd: Command): Command {
  return cmd
    .option(
      "--mode <mode>",
      "prefill placement: colocated, pd (prefill instances) or adrenaline (pd + decode attention offloaded to them)",
      choiceArg(["colocated", "pd", "adrenaline"] as const),
    )
    .option("--prefill-instances <n>", "locally spawned prefill instances (pd, adrenaline)", intArg(1, 64))
    .option(
      "--prefill-instance-addrs <list>",
      "host:port of running `lamina prefill-instance` processes, comma-separated (pd, adrenaline; secret: --attention-token)",
      addrListArg,
    )
    .option(
      "--prefill-threads <n>",
      "kernel threads a prefill instance gives prefill; its attention executor gets the rest",
      intArg(1, 1024),
    )
    .option(
      "--prefill-ttft-ms <ms>",
      "give prefill the fewest threads that meet this TTFT for the longest prompt (measured at start-up); the attention executor gets the rest",
      intArg(1),
    )
    .option("--prefill-kv-memory <size>", "KV budget of each prefill instance's attention executor", sizeArg)
    .option(
      "--offload-ratio <r>",
      "adrenaline: fixed offloaded/kept request ratio (default: the load-aware bound)",
      ratioArg,
    );
}

/** What decoding reuses: cached prompt prefixes, and drafts looked up in a sequence's own tokens. */
function addReuseFlags(cmd: Command): Command {
  return cmd
    .option(
      "--no-prefix-caching",
      "compute every prompt in full (by default the KV of whole blocks of a prompt prefix already computed is reused)",
    )
    .option(
      "--speculative-tokens <n>",
      `speculative decoding by prompt lookup: tokens proposed a step from the sequence's own earlier text, checked in one forward pass (0: off; default ${DEFAULT_SPECULATION.tokens} for a model of 32 MiB of weights or more, else 0)`,
      intArg(0, 16),
    )
    .option(
      "--speculative-max-running <n>",
      `speculate only while at most this many sequences run (default ${DEFAULT_SPECULATION.maxRunning})`,
      intArg(1, 4096),
    );
}

/** Which model, its tokenizer and its chat template. */
function addModelFlags(cmd: Command): Command {
  return cmd
    .option(
      "--model <path|org/name>",
      "Hugging Face directory, llama2.c .bin, .gguf file (the families the README lists; F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/Q2_K/Q3_K/Q4_K/Q5_K/Q6_K/IQ4_NL/IQ4_XS/MXFP4), Hub id ORG/NAME, or a Hub repository's ORG/NAME/FILE.gguf (default: the built-in demo model)",
    )
    .option("--tokenizer <path>", "tokenizer.bin for a llama2.c checkpoint (default: found beside it)")
    .option(
      "--chat-template <file|template>",
      "a Jinja chat template (a file, or the template itself) in place of the model's own, or for a model without one",
      chatTemplateArg,
    );
}

/** Lamina's (a, b) topology: the model worker processes and their plane. */
function addModelWorkerFlags(cmd: Command): Command {
  return cmd
    .option(
      "--model-workers <n>",
      "model worker processes (Lamina's (a, b) topology): slices rotate over them, KV on the attention workers",
      intArg(1, 32),
    )
    .option(
      "--model-worker-addrs <list>",
      "host:port of running `lamina model-worker --listen` processes, comma-separated (instead of --model-workers; on other hosts with --model-plane tcp)",
      addrListArg,
    )
    .option(
      "--model-plane <kind>",
      "the model workers' plane: shm (one segment, workers on this host; default) or tcp (each keeps a copy, linked over TCP: workers on other hosts)",
      choiceArg(["shm", "tcp"] as const),
    )
    .option("--model-worker-threads <n>", "kernel threads of each model worker (default 1)", intArg(1, 1024));
}

function outputReserveArg(value: string): OutputReserveOptions {
  const named = NAMED_OUTPUT_RESERVES[value];
  if (named) return named;
  const parts = value.split(",").map((p) => (p.trim() === "" ? Number.NaN : Number(p)));
  if (parts.length !== 3)
    throw new InvalidArgumentError(`expected default, none or INITIAL,MIN,DECAY, got "${value}"`);
  try {
    return checkOutputReserve({ initial: parts[0]!, min: parts[1]!, decay: parts[2]! });
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

function ratioArg(value: string): number {
  const r = Number(value);
  if (value.trim() === "" || !Number.isFinite(r) || r < 0)
    throw new InvalidArgumentError(`expected a ratio ≥ 0, got "${value}"`);
  return r;
}

/**
 * --chat-template: a file's text, or (as vLLM takes it) the template itself where the value is no
 * file but reads as Jinja.
 */
function chatTemplateArg(value: string): string {
  if (existsSync(value)) {
    try {
      return readFileSync(value, "utf8");
    } catch (e) {
      throw new InvalidArgumentError(`cannot read ${value}: ${(e as Error).message}`);
    }
  }
  if (value.includes("{{") || value.includes("{%")) return value;
  throw new InvalidArgumentError(`"${value}" is neither a file nor a Jinja template`);
}

export interface EngineFlagValues {
  model?: string;
  tokenizer?: string;
  chatTemplate?: string;
  backend?: "auto" | "native" | "reference";
  threads?: number;
  weightPacking?: boolean;
  kvMemory?: number;
  blockSize?: number;
  kvDtype?: KvDType;
  maxModelLen?: number;
  maxRunning?: number;
  outputReserve?: OutputReserveOptions;
  prefixCaching?: boolean;
  speculativeTokens?: number;
  speculativeMaxRunning?: number;
  attentionWorkers?: number;
  attentionWorkerAddrs?: string[];
  attentionWorkerThreads?: number;
  coreBinding?: boolean;
  attentionToken?: string;
  attentionTimeoutMs?: number;
  spinUs?: number;
  partition?: "head" | "request";
  pipelineDepth?: number;
  modelWorkers?: number;
  modelWorkerAddrs?: string[];
  modelWorkerThreads?: number;
  modelPlane?: "shm" | "tcp";
  transport?: "shm" | "tcp";
  mode?: "colocated" | "pd" | "adrenaline";
  prefillInstances?: number;
  prefillInstanceAddrs?: string[];
  prefillThreads?: number;
  prefillTtftMs?: number;
  prefillKvMemory?: number;
  offloadRatio?: number;
}

/** Turns parsed flags into EngineOptions, dropping what was not given. */
export function engineOptionsFromFlags(f: EngineFlagValues): EngineOptions {
  const o: Record<string, unknown> = {
    model: f.model,
    tokenizerPath: f.tokenizer,
    chatTemplate: f.chatTemplate,
    backend: f.backend,
    threads: f.threads,
    weightPacking: f.weightPacking,
    kvMemory: f.kvMemory,
    blockSize: f.blockSize,
    kvDtype: f.kvDtype,
    maxModelLen: f.maxModelLen,
    maxRunning: f.maxRunning,
    outputReserve: f.outputReserve,
    prefixCaching: f.prefixCaching,
    speculativeTokens: f.speculativeTokens,
    speculativeMaxRunning: f.speculativeMaxRunning,
    attentionWorkers: f.attentionWorkers,
    attentionWorkerAddrs: f.attentionWorkerAddrs,
    attentionWorkerThreads: f.attentionWorkerThreads,
    coreBinding: f.coreBinding,
    attentionToken: f.attentionToken ?? process.env.LAMINA_ATTENTION_TOKEN,
    attentionTimeoutMs: f.attentionTimeoutMs,
    spinMicros: f.spinUs,
    partition: f.partition,
    pipelineDepth: f.pipelineDepth,
    modelWorkers: f.modelWorkers,
    modelWorkerAddrs: f.modelWorkerAddrs,
    modelWorkerThreads: f.modelWorkerThreads,
    modelPlane: f.modelPlane,
    transport: f.transport,
    mode: f.mode,
    prefillInstances: f.prefillInstances,
    prefillInstanceAddrs: f.prefillInstanceAddrs,
    prefillThreads: f.prefillThreads,
    prefillTtftMs: f.prefillTtftMs,
    prefillKvMemory: f.prefillKvMemory,
    offloadRatio: f.offloadRatio,
  };
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o as EngineOptions;
}
