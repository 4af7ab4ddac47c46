/**
 * TCP entry points: `listenTcp` serves authenticated channels, `connectTcp` opens one. Each
 * connection is independent: a malformed, oversized or unauthenticated frame closes that
 * connection (logged with its reason) and nothing else.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import type { Channel } from "./channel.js";
import { HandshakeError } from "./errors.js";
import { checkSecret, type Secret } from "./handshake.js";
import { type FrameLimits, resolveLimits } from "./limits.js";
import { TcpChannel, type TcpChannelOptions } from "./tcp-channel.js";

export interface TcpOptions {
  /** Shared secret both sides know; never sent. */
  secret: Secret;
  /** Hard frame limits this side enforces on what it receives and sends (defaults: DEFAULT_LIMITS). */
  limits?: Partial<FrameLimits>;
  /** Default 5000 ms. */
  handshakeTimeoutMs?: number;
  /** Ping after this much send silence; default 1000 ms, 0 disables. */
  heartbeatMs?: number;
  /** Declare the peer dead after this much receive silence; default 10000 ms, 0 disables. */
  peerTimeoutMs?: number;
  /** Where connection-level problems are reported; default console.warn. */
  log?: (line: string) => void;
}

export interface ListenOptions extends TcpOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port (see TcpServer.port). */
  port: number;
}

export interface ConnectOptions extends TcpOptions {
  host: string;
  port: number;
}

export interface TcpServer {
  readonly host: string;
  readonly port: number;
  /** Authenticated channels currently open. */
  readonly channels: ReadonlySet<Channel>;
  /** Stops listening and closes every channel. */
  close(): Promise<void>;
}

function defaultLog(line: string): void {
  console.warn(`lamina transport: ${line}`);
}

function channelOptions(o: TcpOptions, where: string): TcpChannelOptions {
  const num = (v: number | undefined, dflt: number, name: string) => {
    const x = v ?? dflt;
    if (!Number.isFinite(x) || x < 0) throw new RangeError(`${where}: ${name} must be a non-negative number`);
    return x;
  };
  return {
    secret: checkSecret(o.secret, where),
    limits: resolveLimits(o.limits),
    handshakeTimeoutMs: num(o.handshakeTimeoutMs, 5000, "handshakeTimeoutMs") || 5000,
    heartbeatMs: num(o.heartbeatMs, 1000, "heartbeatMs"),
    peerTimeoutMs: num(o.peerTimeoutMs, 10000, "peerTimeoutMs"),
    log: o.log ?? defaultLog,
  };
}

/** Listens for connections; `onChannel` receives each one once it has authenticated. */
export async function listenTcp(
  options: ListenOptions,
  onChannel: (channel: Channel) => void,
): Promise<TcpServer> {
  const opts = channelOptions(options, "listenTcp");
  const channels = new Set<TcpChannel>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const channel = new TcpChannel(socket, "server", opts);
    channel.handshake().then(
      () => {
        channels.add(channel);
        channel.onClose(() => channels.delete(channel));
        try {
          onChannel(channel);
        } catch (err) {
          void channel.close(`onChannel threw: ${(err as Error).message}`);
        }
      },
      () => {
        // Already logged and closed by the channel.
      },
    );
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => opts.log(`server error: ${err.message}`));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  return {
    host,
    port,
    channels,
    async close() {
      const closing = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...channels].map((c) => c.close("server shutting down")));
      for (const s of sockets) s.destroy();
      await closing;
    },
  };
}

/** Connects and authenticates; rejects with HandshakeError on a wrong secret, version or timeout. */
export async function connectTcp(options: ConnectOptions): Promise<TcpChannel> {
  const opts = channelOptions(options, "connectTcp");
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection({ host: options.host, port: options.port });
    s.once("connect", () => {
      s.off("error", reject);
      resolve(s);
    });
    s.once("error", (err) =>
      reject(new HandshakeError(`cannot connect to ${options.host}:${options.port}: ${err.message}`)),
    );
  });
  const channel = new TcpChannel(socket, "client", opts);
  await channel.handshake();
  return channel;
}
