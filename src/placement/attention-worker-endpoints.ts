import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { WorkerEndpoint } from "../attention/remote-service.js";
import { formatCpuList } from "../kernels/cpus.js";
import type { Channel } from "../transport/channel.js";
import { createShmChannel } from "../transport/shm-channel.js";
import { connectTcp } from "../transport/tcp.js";

const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));
/** How long a spawned worker may take to listen or attach (it loads the kernels, nothing else). */
const START_TIMEOUT_MS = 15_000;
/** How often a starting worker's process state is looked at (a stopped one will never start). */
const START_WATCH_MS = 100;
const children = new Set<ChildProcess>();

/**
 * Watches a starting worker: a process stopped (SIGSTOP, a debugger) before it is up would hold
 * recovery until the start-up bound, so it counts as a failed start at once. Returns the cancel.
 */
function failIfStopped(child: ChildProcess, fail: (why: string) => void): () => void {
  const timer = setInterval(() => {
    if (child.pid === undefined || !processStopped(child.pid)) return;
    clearInterval(timer);
    fail(`attention worker ${child.pid} was stopped during start-up`);
  }, START_WATCH_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** Whether Linux reports the process as stopped (state T or t in /proc/PID/stat). */
function processStopped(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state === "T" || state === "t";
  } catch {
    return false;
  }
}
let exitHook = false;

/** A locally spawned process (attention worker, model worker) never outlives its engine. */
export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once("exit", () => children.delete(child));
  if (!exitHook) {
    exitHook = true;
    // Locally spawned workers never outlive their engine.
    process.once("exit", () => {
      for (const c of children) c.kill("SIGKILL");
    });
  }
}

export interface SpawnOptions {
  readonly transport: "shm" | "tcp";
  readonly kvMemory: number;
  readonly threads: number;
  /** CPUs the worker binds all its threads to (default: wherever the scheduler puts them). */
  readonly cpus?: readonly number[];
  /** Spin budget of the shared-memory channel, this end and the worker's (default: the channel's). */
  readonly spinMicros?: number;
  readonly log: (line: string) => void;
}

/** A locally spawned attention worker: `connect` starts a fresh process (so a lost one can be replaced). */
export class SpawnedWorker implements WorkerEndpoint {
  child: ChildProcess | null = null;
  private readonly token = randomBytes(24).toString("hex");

  constructor(
    readonly name: string,
    private readonly o: SpawnOptions,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async connect(): Promise<Channel> {
    const common = [
      "attention-worker",
      "--kv-memory",
      String(this.o.kvMemory),
      "--threads",
      String(this.o.threads),
      ...(this.o.spinMicros !== undefined ? ["--spin-us", String(this.o.spinMicros)] : []),
      ...(this.o.cpus ? ["--cpus", formatCpuList(this.o.cpus)] : []),
    ];
    if (this.o.transport === "shm") {
      const channel = createShmChannel(
        this.o.spinMicros !== undefined ? { spinMicros: this.o.spinMicros } : {},
      );
      const child = fork(CLI, [...common, "--shm", channel.name], {
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      this.adopt(child);
      child.once("exit", (code, signal) => {
        if (!channel.closed) void channel.close(`attention worker process exited (${signal ?? code})`);
      });
      // The worker attaches once its kernels are loaded: wait for that here (start-up has a bound
      // of its own), so the CONFIGURE that follows is held only to its reply's liveness bound.
      const unwatch = failIfStopped(child, (why) => void channel.close(why));
      try {
        await channel.waitForPeer(START_TIMEOUT_MS);
      } catch (e) {
        child.kill("SIGKILL");
        await channel.close(`attention worker did not start: ${(e as Error).message}`);
        throw e;
      } finally {
        unwatch();
      }
      return channel;
    }
    const child = fork(CLI, [...common, "--listen", "127.0.0.1:0"], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: { ...process.env, LAMINA_ATTENTION_TOKEN: this.token },
    });
    this.adopt(child);
    const port = await new Promise<number>((resolve, reject) => {
      // A worker stopped before it listens would otherwise hold recovery for ever.
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`attention worker did not listen within ${START_TIMEOUT_MS} ms`));
      }, START_TIMEOUT_MS);
      const unwatch = failIfStopped(child, (why) => {
        clearTimeout(timer);
        child.kill("SIGKILL");
        reject(new Error(why));
      });
      child.once("message", (m: { type?: string; port?: number }) => {
        clearTimeout(timer);
        unwatch();
        if (m?.type === "listening" && m.port) resolve(m.port);
        else reject(new Error("unexpected message from attention worker"));
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        unwatch();
        reject(new Error(`attention worker exited during start-up (code ${code})`));
      });
    });
    return connectTcp({ host: "127.0.0.1", port, secret: this.token, log: this.o.log });
  }

  private adopt(child: ChildProcess): void {
    if (this.child && this.child.exitCode === null) this.child.kill("SIGKILL");
    this.child = child;
    trackChild(child);
    child.once("exit", (code, signal) =>
      this.o.log(`attention worker ${this.name} (pid ${child.pid}) exited (${signal ?? code})`),
    );
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.child?.kill(signal);
  }

  /** The engine is done with this worker: its process goes too (a TCP worker would keep listening). */
  async close(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGKILL");
    await exited;
  }
}

/** An attention worker already running at host:port (another host, or started by hand). */
export class AddressedWorker implements WorkerEndpoint {
  constructor(
    readonly name: string,
    private readonly host: string,
    private readonly port: number,
    private readonly token: string,
    private readonly log: (line: string) => void,
  ) {}

  connect(): Promise<Channel> {
    return connectTcp({ host: this.host, port: this.port, secret: this.token, log: this.log });
  }

  static parse(addr: string, token: string, log: (line: string) => void): AddressedWorker {
    const i = addr.lastIndexOf(":");
    const host = addr.slice(0, i).replace(/^\[|\]$/g, "");
    return new AddressedWorker(addr, host, Number(addr.slice(i + 1)), token, log);
  }
}
