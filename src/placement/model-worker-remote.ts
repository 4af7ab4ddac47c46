import type { ModelWorkerProc } from "../runtime/model-worker-executor.js";
import {
  MODEL_WORKER_MESSAGE,
  MODEL_WORKER_PROTOCOL_VERSION,
  type ToModelWorker,
} from "../runtime/model-worker-protocol.js";
import type { Channel } from "../transport/channel.js";
import { shmNative } from "../transport/shm-native.js";
import { connectTcp } from "../transport/tcp.js";
import { hostId } from "../util/host-id.js";
import { parseHostPort } from "../util/host-port.js";
import { ControlledModelWorker, checkHello } from "./model-worker-procs.js";

/** How long a running model worker has to say hello once connected (its model is already loaded). */
const HELLO_TIMEOUT_MS = 10_000;
const RETRY_EVERY_MS = 250;

export interface ModelWorkerConnectOptions {
  readonly secret: string;
  /** The front end's `modelFingerprint`. */
  readonly fingerprint: string;
  readonly log: (line: string) => void;
}

/**
 * A model worker someone else started (`lamina model-worker --listen`), reached over an
 * authenticated TCP channel. The front end cannot kill it: giving it up closes the channel, and
 * the worker ends its session (a stalled one is kept off the plane by its lease).
 */
class ConnectedModelWorker extends ControlledModelWorker {
  pid = 0;
  /**
   * Whether the worker's pid is visible here (the same machine, and the pid alive in this pid
   * namespace): liveness then checks it. On another machine the same number is another process.
   */
  private pidVisible = false;

  constructor(
    private readonly channel: Channel,
    readonly address: string,
    /** Where the front end reached it (its copy of a plane over TCP listens there too). */
    readonly host: string,
  ) {
    super();
    channel.onMessage((msg) => {
      if (msg.type === MODEL_WORKER_MESSAGE) this.receive(msg.control);
      else this.receive(new Error(`model worker at ${address} sent frame type ${msg.type}`));
    });
    channel.onClose((info) => this.receive(new Error(`model worker at ${address}: ${info.reason}`)));
  }

  /** Takes the hello's pid; liveness also checks the process where this host can see it. */
  adopt(pid: number, host: string | undefined): void {
    this.pid = pid;
    this.pidVisible = host === hostId() && pid > 0 && shmNative().pidAlive(pid);
  }

  protected post(m: ToModelWorker): void {
    this.channel.send({ type: MODEL_WORKER_MESSAGE, control: m }).catch(() => {
      // Closed: the waiter hears it from onClose.
    });
  }

  alive(): boolean {
    if (this.channel.closed) return false;
    // The channel's close is an event-loop turn away; the engine thread may be in a native wait.
    return !this.pidVisible || shmNative().pidAlive(this.pid);
  }

  kill(): void {
    void this.channel.close("the front end gave this model worker up");
  }

  async stop(): Promise<void> {
    if (this.channel.closed) return;
    this.post({ v: MODEL_WORKER_PROTOCOL_VERSION, type: "stop" });
    await this.channel.close("front end shutting down");
  }
}

/** Connects to a listening model worker, authenticates, and checks its hello. */
export async function connectModelWorker(
  addr: string,
  o: ModelWorkerConnectOptions,
): Promise<ModelWorkerProc> {
  const hp = parseHostPort(addr);
  if (!hp) throw new Error(`model worker address must be HOST:PORT (got "${addr}")`);
  const { host, port } = hp;
  const channel = await connectTcp({ host, port, secret: o.secret, log: o.log });
  const proc = new ConnectedModelWorker(channel, addr, host);
  try {
    const hello = await proc.next(HELLO_TIMEOUT_MS);
    checkHello(hello, o.fingerprint, `model worker at ${addr}`);
    if (hello.type === "hello") proc.adopt(hello.pid, hello.host);
  } catch (e) {
    await channel.close("refused");
    throw e;
  }
  return proc;
}

/**
 * Connects again to a model worker that was lost (its supervisor restarting it, a dropped
 * connection), trying for up to `withinMs`; the last failure is thrown after that.
 */
export async function reconnectModelWorker(
  addr: string,
  o: ModelWorkerConnectOptions,
  withinMs: number,
): Promise<ModelWorkerProc> {
  const t0 = performance.now();
  let tries = 0;
  for (;;) {
    try {
      return await connectModelWorker(addr, o);
    } catch (e) {
      if (++tries === 1)
        o.log(`model worker at ${addr}: reconnecting for up to ${withinMs} ms (${(e as Error).message})`);
      if (performance.now() - t0 + RETRY_EVERY_MS > withinMs)
        throw new Error(
          `model worker at ${addr} did not come back within ${withinMs} ms: ${(e as Error).message}`,
        );
      await new Promise((resolve) => setTimeout(resolve, RETRY_EVERY_MS));
    }
  }
}
