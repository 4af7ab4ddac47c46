import type { ServerResponse } from "node:http";

/**
 * Server-sent events on a raw Node response, with backpressure: a slow reader makes the
 * writer wait for 'drain' instead of buffering the whole generation in memory.
 */
export class SseWriter {
  private closedByPeer = false;

  constructor(private readonly res: ServerResponse) {
    res.once("close", () => {
      if (!res.writableFinished) this.closedByPeer = true;
    });
  }

  /** True once the client has gone away before the stream ended. */
  get clientGone(): boolean {
    return this.closedByPeer || this.res.destroyed;
  }

  start(): void {
    this.res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    this.res.flushHeaders();
  }

  async send(data: unknown): Promise<void> {
    await this.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  async done(): Promise<void> {
    await this.write("data: [DONE]\n\n");
    if (!this.clientGone) this.res.end();
  }

  private async write(chunk: string): Promise<void> {
    if (this.clientGone) return;
    if (this.res.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const finish = () => {
        this.res.off("drain", finish);
        this.res.off("close", finish);
        resolve();
      };
      this.res.on("drain", finish);
      this.res.on("close", finish);
    });
  }
}
