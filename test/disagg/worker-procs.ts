import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { GenerateRequest } from "../../src/engine/api.js";
import type { LoadedModel } from "../../src/model/types.js";
import { greedy } from "../helpers/engine-driver.js";
import { type GroupChild, spawnGroup } from "../helpers/processes.js";

/** The repository's `lamina` launcher (dist/test/disagg → repository root). */
export const LAMINA_BIN = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../../bin/lamina.js",
);

export const TEST_TOKEN = "disagg-test-secret-0123456789";

/** A `lamina attention-worker` process started by a test, and the address it listens on. */
export interface WorkerProc {
  readonly child: ChildProcess;
  readonly host: string;
  readonly port: number;
  /** Everything it wrote to stderr so far (for failure messages). */
  readonly log: () => string;
  /** Resolves once the process has exited (at once if it already has). */
  readonly exited: Promise<void>;
  /** The process group it leads (everything it started goes with it on stop). */
  readonly group: GroupChild;
}

/**
 * Starts `lamina attention-worker --listen HOST:PORT` (optionally under a command prefix such as
 * `ip netns exec NS`) in its own process group and waits for its "listening on" line, which names
 * the bound port. If it does not start, it is killed before the error is thrown.
 */
export async function startWorkerProc(
  listen: string,
  o: { prefix?: string[]; kvMemory?: string; token?: string; timeoutMs?: number } = {},
): Promise<WorkerProc> {
  const args = [
    LAMINA_BIN,
    "attention-worker",
    "--listen",
    listen,
    "--token",
    o.token ?? TEST_TOKEN,
    "--kv-memory",
    o.kvMemory ?? "64MiB",
    "--threads",
    "1",
  ];
  const prefix = o.prefix ?? [];
  const cmd = prefix.length > 0 ? prefix[0]! : process.execPath;
  const argv = prefix.length > 0 ? [...prefix.slice(1), process.execPath, ...args] : args;
  const group = spawnGroup(cmd, argv, { stdio: ["ignore", "ignore", "pipe"] });
  try {
    const m = await group.waitForOutput(
      /listening on (\S+):(\d+) /,
      "attention worker's listening line",
      o.timeoutMs ?? 15000,
    );
    return {
      child: group.child,
      host: m[1]!,
      port: Number(m[2]),
      log: group.output,
      exited: group.exited.then(() => {}),
      group,
    };
  } catch (err) {
    await group.stop();
    throw err;
  }
}

/** Kills a test's worker process and everything it started, and waits until it is gone. */
export async function stopWorkerProc(w: WorkerProc | null | undefined): Promise<void> {
  await w?.group.stop();
}

/** Concurrent greedy requests of different lengths on the stories models. */
export function storyRequests(model: LoadedModel, maxTokens = 40): GenerateRequest[] {
  const prompts = [
    "Once upon a time",
    "The little dog",
    "Lily and Ben went to the park and",
    "One day, a big bear",
    "Tom had a red ball",
  ];
  return prompts.map((p, i) => ({
    id: `r${i}`,
    promptTokenIds: model.tokenizer.encode(p),
    params: greedy(maxTokens - 4 * i, { ignoreEos: true }),
  }));
}
