import { availableParallelism } from "node:os";
import type { Command } from "commander";
import { listenPrefillInstance } from "../pd/prefill-listen.js";
import { prefillThreadSplit } from "../pd/thread-share.js";
import { DEFAULT_KV_MEMORY } from "../placement/sizes.js";
import { choiceArg, intArg, listenArg, sizeArg } from "./parse.js";

interface PrefillInstanceFlags {
  listen: { host: string; port: number };
  model?: string;
  tokenizer?: string;
  backend: "auto" | "native" | "reference";
  kvMemory: number;
  token?: string;
  threads?: number;
  prefillThreads?: number;
  maxTokensPerStep: number;
}

/**
 * `lamina prefill-instance`: a prefill instance of a PD / Adrenaline placement that decode
 * instances reach over TCP (`--prefill-instance-addrs`): prefill with layer-by-layer KV handoff,
 * plus an attention executor holding offloaded requests' KV in this machine's memory.
 */
export function registerPrefillInstanceCommand(program: Command): void {
  program
    .command("prefill-instance")
    .description("run a prefill instance (prefill + attention executor) that decode instances reach over TCP")
    .requiredOption("--listen <host:port>", "address to listen on (port 0 picks one)", listenArg)
    .option("--model <path|hub-id>", "the decode instance's model (default: the built-in demo model)")
    .option("--tokenizer <path>", "tokenizer.bin for a llama2.c checkpoint")
    .option("--backend <name>", "kernels", choiceArg(["auto", "native", "reference"] as const), "auto")
    .option(
      "--kv-memory <size>",
      "attention-executor KV budget per decode instance",
      sizeArg,
      DEFAULT_KV_MEMORY,
    )
    .option("--token <secret>", "shared secret decode instances must prove (or LAMINA_ATTENTION_TOKEN)")
    .option("--threads <n>", "kernel threads in all (default: all cores)", intArg(1, 1024))
    .option(
      "--prefill-threads <n>",
      "threads prefill gets; the attention executor gets the rest",
      intArg(1, 1024),
    )
    .option("--max-tokens-per-step <n>", "largest prefill step accepted", intArg(1, 1 << 20), 2048)
    .action(async (f: PrefillInstanceFlags) => {
      const log = (line: string) => process.stderr.write(`prefill-instance[${process.pid}]: ${line}\n`);
      const token = f.token ?? process.env.LAMINA_ATTENTION_TOKEN;
      if (!token)
        throw new Error("a prefill instance needs a shared secret: --token or LAMINA_ATTENTION_TOKEN");
      const cores = f.threads ?? availableParallelism();
      const split = prefillThreadSplit(
        cores,
        f.prefillThreads === undefined ? undefined : Math.min(cores, f.prefillThreads),
      );
      const prefillThreads = split.prefill;
      const attentionThreads = split.attention;
      const instance = await listenPrefillInstance({
        host: f.listen.host,
        port: f.listen.port,
        token,
        ...(f.model ? { model: f.model } : {}),
        ...(f.tokenizer ? { tokenizerPath: f.tokenizer } : {}),
        backend: f.backend,
        kvMemory: f.kvMemory,
        prefillThreads,
        attentionThreads,
        maxTokens: f.maxTokensPerStep,
        log,
      });
      log(
        `listening on ${f.listen.host}:${instance.port} (model ${instance.model.source.label}; prefill ${prefillThreads} thread(s), attention executor ${attentionThreads})`,
      );
      const stop = () => void instance.close().then(() => process.exit(0));
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}
