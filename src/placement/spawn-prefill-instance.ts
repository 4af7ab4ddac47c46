import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { PrefillProcessSettings } from "../pd/prefill-main.js";
import type { Channel } from "../transport/channel.js";
import { createShmChannel } from "../transport/shm-channel.js";

const ENTRY = fileURLToPath(new URL("../pd/prefill-main.js", import.meta.url));

/** A prefill instance in a child process of the decode instance, over a shared-memory channel. */
export class SpawnedPrefillInstance {
  child: ChildProcess | null = null;

  constructor(
    readonly name: string,
    private readonly settings: Omit<PrefillProcessSettings, "shm">,
    private readonly log: (line: string) => void,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async open(): Promise<Channel> {
    const channel = createShmChannel();
    const child = fork(ENTRY, [JSON.stringify({ ...this.settings, shm: channel.name })], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.child = child;
    // Never outlive the decode instance.
    const kill = () => child.kill("SIGKILL");
    process.once("exit", kill);
    child.once("exit", (code, signal) => {
      process.off("exit", kill);
      this.log(`prefill instance ${this.name} (pid ${child.pid}) exited (${signal ?? code})`);
      if (!channel.closed) void channel.close(`prefill instance process exited (${signal ?? code})`);
    });
    // Its channel closed (lost, or the decode instance done with it): the process has nothing left
    // to do. It exits by itself, unless it is stopped or wedged: then it is killed.
    channel.onClose(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    await new Promise<void>((resolve, reject) => {
      child.once("message", () => resolve());
      child.once("exit", (code) =>
        reject(new Error(`prefill instance ${this.name} exited during start-up (${code})`)),
      );
    });
    return channel;
  }
}
