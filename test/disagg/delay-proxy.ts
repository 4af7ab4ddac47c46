import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy that holds every chunk for `delayMs` before passing it on, in both directions and
 * in order: a stand-in for a slower network link where the kernel has no netem. Chunks are
 * forwarded by timers, so the delay adds latency without stopping the pipe.
 */
export class DelayProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;
  /** Chunks forwarded, both directions (to check traffic really went through). */
  chunks = 0;

  constructor(
    private readonly target: { host: string; port: number },
    private readonly delayMs: number,
  ) {}

  async listen(host = "127.0.0.1"): Promise<number> {
    const server = createServer((client) => this.pipe(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, host, () => resolve());
    });
    const a = server.address();
    this.port = typeof a === "object" && a ? a.port : 0;
    return this.port;
  }

  private pipe(client: Socket): void {
    const upstream = connect(this.target);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.setNoDelay(true);
      s.on("error", () => {});
      s.once("close", () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    this.forward(client, upstream);
    this.forward(upstream, client);
  }

  private forward(from: Socket, to: Socket): void {
    from.on("data", (chunk: Buffer) => {
      this.chunks++;
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, this.delayMs);
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
