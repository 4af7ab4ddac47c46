import OpenAI from "openai";
import type { EngineClient } from "../../src/engine/api.js";
import { createEngine, type EngineOptions } from "../../src/placement/create-engine.js";
import type { WorkerEngineClient } from "../../src/placement/engine-client.js";
import { createServer, type LaminaServer, type ServerOptions } from "../../src/server/app.js";
import { sharedDataPath } from "../../src/util/shared-data.js";

export interface LiveServer {
  readonly url: string;
  readonly engine: WorkerEngineClient;
  readonly app: LaminaServer;
  readonly client: OpenAI;
  close(): Promise<void>;
}

export function storiesModelPath(): string {
  return sharedDataPath("models", "stories260K", "stories260K.bin");
}

/** The real engine behind the real server on 127.0.0.1 and a random port, with an OpenAI client. */
export async function startServer(
  engineOptions: EngineOptions = { model: storiesModelPath() },
  serverOptions: ServerOptions = {},
): Promise<LiveServer> {
  const engine = await createEngine(engineOptions);
  const app = createServer(engine, serverOptions);
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  if (!address || typeof address === "string") throw new Error("server did not bind a TCP port");
  const url = `http://127.0.0.1:${address.port}`;
  const client = new OpenAI({
    baseURL: `${url}/v1`,
    apiKey: serverOptions.apiKey ?? "unused",
    maxRetries: 0,
  });
  return {
    url,
    engine,
    app,
    client,
    async close() {
      // Nothing is in flight at teardown; don't wait for clients' idle keep-alive sockets to time out.
      const closing = app.close();
      app.server.closeAllConnections();
      await closing;
      await engine.shutdown({ force: true });
    },
  };
}

/** POST a raw body (for malformed input the OpenAI client would never send). */
export async function postRaw(
  url: string,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
): Promise<{
  status: number;
  json: { error?: { message: string; type: string; param: string | null; code: string | null } };
}> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : {} };
}

/** Polls until `check` holds or the time is up; returns whether it held. */
export async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return check();
}

export function kvUsed(engine: EngineClient): number {
  let used = 0;
  for (const kv of engine.stats().kv) used += kv.usedBlocks;
  return used;
}

/** A sample's value in a Prometheus text exposition (NaN when absent). */
export function metric(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(" ")[1]) : Number.NaN;
}
