import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A stand-in for the OpenAI-compatible server, on 127.0.0.1, whose queue the test controls: it
 * admits `capacity` completions and holds them open until release(); every completion beyond that
 * is refused at once with the 429 the real server sends when its waiting queue is full. So a test
 * sees refusals by construction, not by winning a race against the clock.
 */
export interface HeldServer {
  readonly url: string;
  /** Completions admitted and refused so far. */
  readonly admitted: number;
  readonly refused: number;
  /** Resolves once `n` completion requests have arrived (admitted or refused). */
  arrived(n: number): Promise<void>;
  /** Lets the held completions stream their tokens and finish (and any admitted later at once). */
  release(): void;
  close(): Promise<void>;
}

export const MODEL_ID = "held-model";
const MAX_MODEL_LEN = 512;
const BOS = 1;

/** The body the real server sends with a 429 when its waiting queue is full. */
export function queueFullBody(waiting: number): string {
  return JSON.stringify({
    error: {
      message: `the server is at capacity (${waiting} requests waiting); retry later`,
      type: "rate_limit_error",
      param: null,
      code: "queue_full",
    },
  });
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = "";
  for await (const chunk of req) text += chunk;
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

function sendJson(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "application/json" }).end(body);
}

/** One token per word (ids from 2 up), led by BOS when special tokens are asked for. */
function tokenize(body: Record<string, unknown>): number[] {
  const words = String(body.prompt ?? "")
    .split(" ")
    .filter(Boolean);
  const ids = words.map((w) => 2 + (w.length % 50));
  return body.add_special_tokens ? [BOS, ...ids] : ids;
}

/** Streams `maxTokens` one-token chunks, the usage report and [DONE], as the real server does. */
function streamCompletion(res: ServerResponse, body: Record<string, unknown>): void {
  const maxTokens = Number(body.max_tokens);
  const prompt = body.prompt;
  const promptTokens = Array.isArray(prompt) ? prompt.length : tokenize({ prompt }).length;
  res.writeHead(200, { "content-type": "text/event-stream" });
  const event = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
  for (let i = 0; i < maxTokens; i++)
    event({ object: "text_completion", model: MODEL_ID, choices: [{ index: 0, text: " x" }], usage: null });
  event({
    object: "text_completion",
    model: MODEL_ID,
    choices: [],
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: maxTokens,
      total_tokens: promptTokens + maxTokens,
    },
  });
  res.end("data: [DONE]\n\n");
}

export async function startHeldServer(capacity: number): Promise<HeldServer> {
  let admitted = 0;
  let refused = 0;
  let released = false;
  const held: { res: ServerResponse; body: Record<string, unknown> }[] = [];
  const arrivalWaiters: { n: number; resolve: () => void }[] = [];
  const noteArrival = () => {
    for (const w of arrivalWaiters.filter((x) => admitted + refused >= x.n)) {
      arrivalWaiters.splice(arrivalWaiters.indexOf(w), 1);
      w.resolve();
    }
  };

  const completion = (res: ServerResponse, body: Record<string, unknown>) => {
    if (admitted >= capacity) {
      refused++;
      sendJson(res, 429, queueFullBody(capacity));
    } else {
      admitted++;
      if (released) streamCompletion(res, body);
      else held.push({ res, body });
    }
    noteArrival();
  };

  const server = createServer((req, res) => {
    readJson(req)
      .then((body) => {
        if (req.method === "GET" && req.url === "/v1/models")
          sendJson(res, 200, JSON.stringify({ data: [{ id: MODEL_ID, max_model_len: MAX_MODEL_LEN }] }));
        else if (req.method === "POST" && req.url === "/tokenize")
          sendJson(res, 200, JSON.stringify({ tokens: tokenize(body) }));
        else if (req.method === "POST" && req.url === "/v1/completions") completion(res, body);
        else sendJson(res, 404, JSON.stringify({ error: { message: "not found" } }));
      })
      .catch((err: Error) => sendJson(res, 400, JSON.stringify({ error: { message: err.message } })));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    get admitted() {
      return admitted;
    },
    get refused() {
      return refused;
    },
    arrived(n) {
      return new Promise((resolve) => {
        arrivalWaiters.push({ n, resolve });
        noteArrival();
      });
    },
    release() {
      released = true;
      for (const h of held.splice(0)) streamCompletion(h.res, h.body);
    },
    async close() {
      for (const h of held.splice(0)) h.res.destroy();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
