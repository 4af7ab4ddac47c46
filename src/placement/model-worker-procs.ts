import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ModelWorkerProc } from "../runtime/model-worker-executor.js";
import {
  type FromModelWorker,
  fromWorkerSchema,
  type ModelWorkerConfigure,
  parseMessage,
} from "../runtime/model-worker-protocol.js";
import { trackChild } from "./attention-worker-endpoints.js";

const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));
/** A model worker loads the weights before it says hello: a large model takes a while. */
const START_TIMEOUT_MS = 300_000;

export interface ModelWorkerSpawnOptions {
  /** The model as `--model` names it; undefined: the built-in demo. */
  readonly model: string | undefined;
  readonly threads: number;
  readonly log: (line: string) => void;
}

/**
 * A locally spawned model worker (`lamina model-worker`, Node IPC for control). Every message it
 * sends is validated; one that is not a message of the protocol ends it.
 */
class SpawnedModelWorker implements ModelWorkerProc {
  private waiter: ((m: FromModelWorker | Error) => void) | null = null;

  constructor(private readonly child: ChildProcess) {
    child.on("message", (raw: unknown) => {
      const parsed = parseMessage(fromWorkerSchema, raw);
      this.deliver(parsed.ok ? parsed.value : new Error(`model worker sent a bad message: ${parsed.why}`));
    });
    child.once("exit", (code, signal) => this.deliver(new Error(`model worker exited (${signal ?? code})`)));
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  private deliver(m: FromModelWorker | Error): void {
    const w = this.waiter;
    this.waiter = null;
    w?.(m);
  }

  /** The next message (or the process's end), within timeoutMs. */
  next(timeoutMs: number): Promise<FromModelWorker> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`model worker ${this.pid} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (m) => {
        clearTimeout(timer);
        if (m instanceof Error) reject(m);
        else resolve(m);
      };
    });
  }

  async configure(c: ModelWorkerConfigure, timeoutMs: number): Promise<void> {
    const reply = this.next(timeoutMs);
    this.child.send(c);
    const m = await reply;
    if (m.type === "error") throw new Error(`model worker ${this.pid}: ${m.message}`);
    if (m.type !== "configured" || m.epoch !== c.epoch)
      throw new Error(`model worker ${this.pid}: unexpected ${m.type} reply to configure`);
  }

  alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  kill(): void {
    this.child.kill("SIGKILL");
  }

  async stop(): Promise<void> {
    if (!this.alive()) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.kill("SIGKILL");
    await exited;
  }
}

/** Starts model worker `replica` and waits for its hello (model and kernels loaded). */
export async function spawnModelWorker(
  replica: number,
  o: ModelWorkerSpawnOptions,
): Promise<ModelWorkerProc> {
  const args = ["model-worker", "--threads", String(o.threads), ...(o.model ? ["--model", o.model] : [])];
  const child = fork(CLI, args, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  trackChild(child);
  child.once("exit", (code, signal) =>
    o.log(`model worker ${replica} (pid ${child.pid}) exited (${signal ?? code})`),
  );
  const proc = new SpawnedModelWorker(child);
  try {
    const hello = await proc.next(START_TIMEOUT_MS);
    if (hello.type !== "hello") throw new Error(`model worker sent ${hello.type} before hello`);
    if (hello.pid !== child.pid) throw new Error("model worker's hello names another process");
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  return proc;
}
