import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { GenerateRequest } from "../../src/engine/api.js";
import type { LoadedModel } from "../../src/model/types.js";
import { greedy } from "../helpers/engine-driver.js";

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
}

/**
 * Starts `lamina attention-worker --listen HOST:PORT` (optionally under a command prefix such as
 * `ip netns exec NS`) and waits for its "listening on" line, which names the bound port.
 */
export function startWorkerProc(
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
  const child = spawn(cmd, argv, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`attention worker did not start listening within ${o.timeoutMs ?? 15000} ms:\n${stderr}`),
      );
    }, o.timeoutMs ?? 15000);
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => {
      stderr += d;
      const m = /listening on (\S+):(\d+) /.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve({ child, host: m[1]!, port: Number(m[2]), log: () => stderr, exited });
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`attention worker exited during start-up (${signal ?? code}):\n${stderr}`));
    });
  });
}

/** Kills a test's worker process (by its pid) and waits until it is gone. */
export async function stopWorkerProc(w: WorkerProc | null | undefined): Promise<void> {
  if (!w) return;
  if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGKILL");
  await w.exited;
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
