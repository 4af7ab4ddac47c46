import { type Command, Option } from "commander";
import { runAttentionWorker } from "../attention/worker-process.js";
import { DEFAULT_KV_MEMORY } from "../placement/sizes.js";
import { cpuListArg, intArg, listenArg, sizeArg } from "./parse.js";

/** `lamina attention-worker`: a process that holds KV caches and computes attention for engines. */
export function registerAttentionWorkerCommand(program: Command): void {
  program
    .command("attention-worker")
    .description("run an attention worker (KV cache + attention) that engines reach over TCP")
    .option("--listen <host:port>", "address to listen on (port 0 picks one)", listenArg)
    .option("--kv-memory <size>", "KV budget per engine connection, e.g. 4GiB", sizeArg, DEFAULT_KV_MEMORY)
    .option("--token <secret>", "shared secret engines must prove (or LAMINA_ATTENTION_TOKEN)")
    .option("--threads <n>", "kernel threads", intArg(1, 1024))
    .option("--cpus <list>", "bind every thread of this worker to these CPUs, e.g. 2-3 or 1,5", cpuListArg)
    .option(
      "--spin-us <µs>",
      "busy-poll budget before sleeping: the shared-memory channel (default 50) and the data-plane loop (default 1000)",
      intArg(0, 1_000_000),
    )
    .addOption(
      new Option("--shm <name>", "serve one shared-memory channel made by a parent engine").hideHelp(),
    )
    .action(
      async (flags: {
        listen?: { host: string; port: number };
        kvMemory: number;
        token?: string;
        threads?: number;
        cpus?: number[];
        spinUs?: number;
        shm?: string;
      }) => {
        const worker = await runAttentionWorker({
          listen: flags.listen ?? null,
          shm: flags.shm ?? null,
          kvMemory: flags.kvMemory,
          token: flags.token ?? process.env.LAMINA_ATTENTION_TOKEN ?? null,
          ...(flags.threads ? { threads: flags.threads } : {}),
          ...(flags.cpus ? { cpus: flags.cpus } : {}),
          ...(flags.spinUs !== undefined ? { spinMicros: flags.spinUs } : {}),
        });
        // A parent that forked us (locally spawned TCP workers) learns the port this way.
        // (a parent already gone is not an error: the disconnect handler below ends this process)
        if (process.send && worker.port !== null)
          process.send({ type: "listening", port: worker.port }, undefined, {}, () => {});
        // Spawned by an engine: never outlive it.
        if (process.send) process.once("disconnect", () => process.exit(0));
        const stop = () => void worker.close().then(() => process.exit(0));
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      },
    );
}
