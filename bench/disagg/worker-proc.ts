import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../bin/lamina.js");

/** Whether `taskset` can pin processes here (and there are at least two cores to pin to). */
export function canPin(cores: number): boolean {
  return cores >= 2 && spawnSync("taskset", ["-V"]).status === 0;
}

/** Pins this process (all its threads) to one core. */
export function pinSelf(core: number): void {
  pinProcess(process.pid, core);
}

/** Pins a running process (all its threads) to one core. */
export function pinProcess(pid: number, core: number): void {
  spawnSync("taskset", ["-a", "-cp", String(core), String(pid)], { stdio: "ignore" });
}

/** Starts `lamina attention-worker` (1 kernel thread, optionally pinned) and waits for its port. */
export function startAttentionWorker(
  token: string,
  kvMemory: string,
  core: number | null,
): Promise<{ child: ChildProcess; port: number }> {
  const args = [BIN, "attention-worker", "--listen", "127.0.0.1:0", "--token", token];
  args.push("--kv-memory", kvMemory, "--threads", "1");
  const child =
    core === null
      ? spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] })
      : spawn("taskset", ["-c", String(core), process.execPath, ...args], {
          stdio: ["ignore", "ignore", "pipe"],
        });
  let err = "";
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => {
      err += d;
      const m = /listening on \S+:(\d+) /.exec(err);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.once("exit", (code) => reject(new Error(`attention worker exited (${code}):\n${err}`)));
  });
}
