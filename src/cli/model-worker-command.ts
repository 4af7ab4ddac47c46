import type { Command } from "commander";
import { runModelWorker } from "../runtime/model-worker-process.js";
import { intArg } from "./parse.js";

/** `lamina model-worker`: a process that holds the weights and runs model slices for a front end. */
export function registerModelWorkerCommand(program: Command): void {
  program
    .command("model-worker")
    .description("run a model worker (weights, no per-request state); started by `serve --model-workers N`")
    .option("--model <path|id>", "the front end's model (default: the built-in demo)")
    .option("--threads <n>", "kernel threads", intArg(1, 1024))
    .action(async (flags: { model?: string; threads?: number }) => {
      await runModelWorker({
        ...(flags.model ? { model: flags.model } : {}),
        ...(flags.threads ? { threads: flags.threads } : {}),
      });
    });
}
