import type { Command } from "commander";
import { runModelWorker } from "../runtime/model-worker-process.js";
import { intArg, listenArg } from "./parse.js";

/** `lamina model-worker`: a process that holds the weights and runs model slices for a front end. */
export function registerModelWorkerCommand(program: Command): void {
  program
    .command("model-worker")
    .description(
      "run a model worker (weights, no per-request state) for a front end: `serve --model-worker-addrs` connects to it (from another host with --model-plane tcp; the plane's frames come to the --listen host, on a port of their own)",
    )
    .option("--listen <host:port>", "serve front ends over TCP, one at a time (port 0 picks one)", listenArg)
    .option("--token <secret>", "shared secret front ends must prove (or LAMINA_ATTENTION_TOKEN)")
    .option("--model <path|id>", "the front end's model (default: the built-in demo)")
    .option("--threads <n>", "kernel threads", intArg(1, 1024))
    .option(
      "--no-weight-packing",
      "keep weights in the 32-value block formats as stored only (no copy packed for decode)",
    )
    .option(
      "--plane-port <n>",
      "with --model-plane tcp front ends: the port the plane's frames come to (default: any free one)",
      intArg(1, 65535),
    )
    .action(
      async (flags: {
        listen?: { host: string; port: number };
        token?: string;
        model?: string;
        threads?: number;
        weightPacking: boolean;
        planePort?: number;
      }) => {
        const token = flags.token ?? process.env.LAMINA_ATTENTION_TOKEN;
        const worker = await runModelWorker({
          ...(flags.listen ? { listen: flags.listen } : {}),
          ...(token ? { token } : {}),
          ...(flags.model ? { model: flags.model } : {}),
          ...(flags.threads ? { threads: flags.threads } : {}),
          ...(flags.weightPacking ? {} : { weightPacking: false }),
          ...(flags.planePort ? { planePort: flags.planePort } : {}),
        });
        const stop = () => void worker.close().then(() => process.exit(0));
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      },
    );
}
