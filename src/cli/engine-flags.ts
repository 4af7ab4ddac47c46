import type { Command } from "commander";
import type { EngineOptions } from "../engine/options.js";
import { addrListArg, choiceArg, intArg, sizeArg } from "./parse.js";

/**
 * Flags shared by every command that runs the engine (`serve`, `generate`): which model, which
 * kernels, sizes, and the placement of attention, so any placement can be tried from the CLI.
 */
export function addEngineFlags(cmd: Command): Command {
  return cmd
    .option(
      "--model <path|org/name>",
      "Hugging Face directory, llama2.c .bin, or Hub id (default: the built-in demo model)",
    )
    .option("--tokenizer <path>", "tokenizer.bin for a llama2.c checkpoint (default: found beside it)")
    .option(
      "--backend <name>",
      "kernels: auto, native or reference",
      choiceArg(["auto", "native", "reference"] as const),
      "auto",
    )
    .option("--threads <n>", "kernel threads (default: all cores)", intArg(1, 1024))
    .option("--kv-memory <size>", "KV cache budget per attention instance, e.g. 512MiB", sizeArg)
    .option("--block-size <n>", "KV block size in tokens", intArg(1, 1024))
    .option("--max-model-len <n>", "cap on prompt + output tokens", intArg(2))
    .option("--max-running <n>", "sequences batched at once", intArg(1, 4096))
    .option(
      "--attention-workers <n>",
      "locally spawned attention workers (0 = in-process attention)",
      intArg(0, 64),
    )
    .option(
      "--attention-worker-addrs <list>",
      "host:port of running attention workers, comma-separated",
      addrListArg,
    )
    .option("--attention-token <secret>", "shared secret for attention workers (or LAMINA_ATTENTION_TOKEN)")
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
}

export interface EngineFlagValues {
  model?: string;
  tokenizer?: string;
  backend?: "auto" | "native" | "reference";
  threads?: number;
  kvMemory?: number;
  blockSize?: number;
  maxModelLen?: number;
  maxRunning?: number;
  attentionWorkers?: number;
  attentionWorkerAddrs?: string[];
  attentionToken?: string;
  partition?: "head" | "request";
  pipelineDepth?: number;
  transport?: "shm" | "tcp";
}

/** Turns parsed flags into EngineOptions, dropping what was not given. */
export function engineOptionsFromFlags(f: EngineFlagValues): EngineOptions {
  const o: Record<string, unknown> = {
    model: f.model,
    tokenizerPath: f.tokenizer,
    backend: f.backend,
    threads: f.threads,
    kvMemory: f.kvMemory,
    blockSize: f.blockSize,
    maxModelLen: f.maxModelLen,
    maxRunning: f.maxRunning,
    attentionWorkers: f.attentionWorkers,
    attentionWorkerAddrs: f.attentionWorkerAddrs,
    attentionToken: f.attentionToken ?? process.env.LAMINA_ATTENTION_TOKEN,
    partition: f.partition,
    pipelineDepth: f.pipelineDepth,
    transport: f.transport,
  };
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o as EngineOptions;
}
