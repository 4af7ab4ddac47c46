import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ModelWorkerProc } from "../runtime/model-worker-executor.js";
import {
  type FromModelWorker,
  fromWorkerSchema,
  type ModelWorkerConfigure,
  type ModelWorkerPeers,
  parseMessage,
  type ToModelWorker,
} from "../runtime/model-worker-protocol.js";
import { trackChild } from "./attention-worker-endpoints.js";

const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));
/** A model worker loads the weights before it says hello: a large model takes a while. */
const START_TIMEOUT_MS = 300_000;

export interface ModelWorkerSpawnOptions {
  /** The model as `--model` names it; undefined: the built-in demo. */
  readonly model: string | undefined;
  readonly threads: number;
  /** False: the worker keeps quantized weights as stored only (`--no-weight-packing`). */
  readonly weightPacking: boolean;
  /** The front end's `modelFingerprint`: a worker that says hello with another is refused. */
  readonly fingerprint: string;
  readonly log: (line: string) => void;
}

/**
 * The front end's side of one model worker's control messages, whatever carries them: every
 * message received is validated, and each request waits for the next one (or the link's end).
 */
export abstract class ControlledModelWorker implements ModelWorkerProc {
  private waiter: ((m: FromModelWorker | Error) => void) | null = null;

  abstract readonly pid: number;
  abstract readonly host: string;
  protected abstract post(m: ToModelWorker): void;
  abstract alive(): boolean;
  abstract kill(): void;
  abstract stop(): Promise<void>;

  /** Hands a raw message (or the link's end) to whoever waits for the next one. */
  protected receive(raw: unknown | Error): void {
    let m: FromModelWorker | Error;
    if (raw instanceof Error) m = raw;
    else {
      const parsed = parseMessage(fromWorkerSchema, raw);
      m = parsed.ok ? parsed.value : new Error(`model worker sent a bad message: ${parsed.why}`);
    }
    const w = this.waiter;
    this.waiter = null;
    w?.(m);
  }

  /** The next message (or the link's end), within timeoutMs. */
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

  async configure(c: ModelWorkerConfigure, timeoutMs: number): Promise<number | undefined> {
    const m = await this.request(c, timeoutMs);
    if (typeof c.plane !== "string" && !m.planePort)
      throw new Error(`model worker ${this.pid}: configured a plane over TCP without saying its port`);
    return m.planePort;
  }

  async peers(p: ModelWorkerPeers, timeoutMs: number): Promise<void> {
    await this.request(p, timeoutMs);
  }

  /** Sends a request and waits for its configured reply (an error reply or another message throws). */
  private async request(
    m: ModelWorkerConfigure | ModelWorkerPeers,
    timeoutMs: number,
  ): Promise<Extract<FromModelWorker, { type: "configured" }>> {
    const reply = this.next(timeoutMs);
    this.post(m);
    const r = await reply;
    if (r.type === "error") throw new Error(`model worker ${this.pid}: ${r.message}`);
    if (r.type !== "configured" || r.epoch !== m.epoch)
      throw new Error(`model worker ${this.pid}: unexpected ${r.type} reply to ${m.type}`);
    return r;
  }
}

/** Throws unless `hello` is a hello from a worker of the front end's model. */
export function checkHello(hello: FromModelWorker, fingerprint: string, where: string): void {
  if (hello.type === "error") throw new Error(`${where}: ${hello.message}`);
  if (hello.type !== "hello") throw new Error(`${where} sent ${hello.type} before hello`);
  if (hello.model !== fingerprint)
    throw new Error(
      `${where} holds another model (fingerprint ${hello.model}, the front end's is ${fingerprint}): start it with the front end's --model`,
    );
}

/** A locally spawned model worker (`lamina model-worker`, Node IPC for control). */
class SpawnedModelWorker extends ControlledModelWorker {
  readonly host = "127.0.0.1";

  constructor(private readonly child: ChildProcess) {
    super();
    child.on("message", (raw: unknown) => this.receive(raw));
    child.once("exit", (code, signal) => this.receive(new Error(`model worker exited (${signal ?? code})`)));
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  protected post(m: ToModelWorker): void {
    this.child.send(m);
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
  const args = [
    "model-worker",
    "--threads",
    String(o.threads),
    ...(o.model ? ["--model", o.model] : []),
    ...(o.weightPacking ? [] : ["--no-weight-packing"]),
  ];
  const child = fork(CLI, args, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  trackChild(child);
  child.once("exit", (code, signal) =>
    o.log(`model worker ${replica} (pid ${child.pid}) exited (${signal ?? code})`),
  );
  const proc = new SpawnedModelWorker(child);
  try {
    const hello = await proc.next(START_TIMEOUT_MS);
    checkHello(hello, o.fingerprint, `model worker ${replica}`);
    if (hello.type === "hello" && hello.pid !== child.pid)
      throw new Error("model worker's hello names another process");
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  return proc;
}
