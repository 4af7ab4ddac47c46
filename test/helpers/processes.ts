/**
 * Child processes for tests that cannot leak them: each is started as the leader of its own
 * process group (`detached: true`), so stopping it kills the group — the process and whatever it
 * started (attention workers, prefill executors) — on every path. Whatever a test forgot is
 * killed when the test process exits.
 */
import { type ChildProcess, type ForkOptions, fork, type SpawnOptions, spawn } from "node:child_process";

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface GroupChild {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything the process wrote to its piped stdout and stderr so far. */
  output(): string;
  /**
   * Resolves with the first match of `pattern` in the output; rejects, naming `what` and showing
   * the output, if the process exits first or nothing matches within `timeoutMs`.
   */
  waitForOutput(pattern: RegExp, what: string, timeoutMs: number): Promise<RegExpExecArray>;
  /** Settles once the process has exited (at once if it already has). */
  readonly exited: Promise<ExitStatus>;
  /** SIGKILLs the whole process group and waits for the process to exit. Safe to call twice. */
  stop(): Promise<void>;
}

const live = new Set<GroupChild>();
let exitHook = false;

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // ESRCH: the group is already empty
  }
}

function track(child: ChildProcess, command: string): GroupChild {
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const pid = child.pid;
  let out = "";
  const listeners = new Set<() => void>();
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    stream.setEncoding("utf8");
    stream.on("data", (d: string) => {
      out += d;
      for (const l of listeners) l();
    });
  }
  let status: ExitStatus | null = null;
  let closed = false;
  child.once("close", () => {
    closed = true;
  });
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once("exit", (code, signal) => {
      status = { code, signal };
      resolve(status);
    });
  });
  const g: GroupChild = {
    child,
    pid,
    output: () => out,
    exited,
    waitForOutput(pattern, what, timeoutMs) {
      return new Promise((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
          child.off("exit", onExit);
        };
        const check = () => {
          const m = pattern.exec(out);
          if (m) {
            done();
            resolve(m);
          }
        };
        const onExit = (code: number | null, signal: string | null) => {
          // Output still in the pipes arrives before 'close', not before 'exit': look once more then.
          const settle = () => {
            check();
            done();
            reject(new Error(`${command} exited (${signal ?? code}) before ${what}:\n${out}`));
          };
          if (closed) settle();
          else child.once("close", settle);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${command}: no ${what} within ${timeoutMs} ms:\n${out}`));
        }, timeoutMs);
        listeners.add(check);
        if (status) onExit(status.code, status.signal);
        else child.once("exit", onExit);
        check();
      });
    },
    async stop() {
      killGroup(pid);
      await exited;
      live.delete(g);
    },
  };
  live.add(g);
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const c of live) killGroup(c.pid);
    });
  }
  return g;
}

/** spawn() in a new process group; stdout and stderr default to pipes whose text output() returns. */
export function spawnGroup(command: string, args: readonly string[], options: SpawnOptions = {}): GroupChild {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options, detached: true });
  return track(child, `${command} ${args.join(" ")}`.slice(0, 200));
}

/** fork() (with an IPC channel) in a new process group. */
export function forkGroup(
  modulePath: string,
  args: readonly string[],
  options: ForkOptions = {},
): GroupChild {
  const child = fork(modulePath, args, {
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    ...options,
    detached: true,
  });
  return track(child, `${modulePath} ${args.join(" ")}`.slice(0, 200));
}

/** `p`, or a rejection naming `what` if it has not settled within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves once `cond()` holds, polling every `everyMs`; rejects naming `what` after `timeoutMs`. */
export async function waitUntil(
  cond: () => boolean,
  what: string,
  timeoutMs = 5000,
  everyMs = 5,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
