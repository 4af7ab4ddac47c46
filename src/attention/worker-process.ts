import { BOUND_PURE_SPIN_US, bindThisProcess, formatCpuList } from "../kernels/cpus.js";
import { loadKernelBackend } from "../kernels/index.js";
import type { Channel } from "../transport/channel.js";
import { openShmChannel } from "../transport/shm-channel.js";
import { listenTcp, type TcpServer } from "../transport/tcp.js";
import { AttentionWorkerSession } from "./worker-session.js";

export interface AttentionWorkerOptions {
  /** host:port to listen on (TCP), or null when serving one shared-memory channel. */
  readonly listen: { host: string; port: number } | null;
  /** Name of a shared-memory channel created by the engine that spawned this worker. */
  readonly shm: string | null;
  readonly kvMemory: number;
  readonly token: string | null;
  readonly threads?: number;
  /** CPUs every thread of this process is bound to before anything else runs (default: unbound). */
  readonly cpus?: readonly number[];
  /** Spin budget (µs) of the shared-memory channel and of the native data plane before they sleep. */
  readonly spinMicros?: number;
  readonly log?: (line: string) => void;
}

/**
 * An attention worker process: owns KV caches and computes attention for the engines that
 * connect to it. Over TCP it serves any number of authenticated connections (one KV cache each);
 * spawned locally it serves the one shared-memory channel its parent made, and exits with it.
 */
export async function runAttentionWorker(
  o: AttentionWorkerOptions,
): Promise<{ close(): Promise<void>; port: number | null }> {
  const log =
    o.log ?? ((line: string) => process.stderr.write(`attention-worker[${process.pid}]: ${line}\n`));
  if (o.cpus)
    log(
      `bound ${bindThisProcess(o.cpus)} threads to CPUs ${formatCpuList(o.cpus)} (waits spin alone up to ${BOUND_PURE_SPIN_US} µs)`,
    );
  const backend = loadKernelBackend({ backend: "auto", ...(o.threads ? { threads: o.threads } : {}) });
  const serve = (channel: Channel) =>
    new AttentionWorkerSession(channel, backend, {
      kvMemory: o.kvMemory,
      log,
      freeWindowBlocks: true,
      ...(o.spinMicros !== undefined ? { spinMicros: o.spinMicros } : {}),
    });
  if (o.shm) {
    const channel = openShmChannel(o.shm, o.spinMicros !== undefined ? { spinMicros: o.spinMicros } : {});
    serve(channel);
    channel.onClose((info) => {
      const poll = channel.pollStats();
      log(
        `engine channel closed (${info.reason}); polled ${poll.spinSeconds.toFixed(3)} s, slept ${poll.sleeps} times; exiting`,
      );
      process.exit(0);
    });
    log(`serving shared-memory channel ${o.shm} with ${backend.describe()}`);
    return { close: () => channel.close(), port: null };
  }
  if (!o.listen) throw new Error("attention-worker needs --listen HOST:PORT");
  if (!o.token)
    throw new Error("attention-worker needs a shared secret: --token SECRET or LAMINA_ATTENTION_TOKEN");
  const server: TcpServer = await listenTcp(
    { host: o.listen.host, port: o.listen.port, secret: o.token, log },
    (channel) => {
      log(`engine connected: ${channel.description}`);
      serve(channel);
    },
  );
  log(
    `listening on ${server.host}:${server.port} with ${backend.describe()}, KV budget ${(o.kvMemory / 2 ** 20).toFixed(0)} MiB per connection`,
  );
  return { close: () => server.close(), port: server.port };
}
