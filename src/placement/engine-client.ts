import { Worker } from "node:worker_threads";
import type { EngineClient, EngineStats, GenerateRequest, ModelInfo, TokenEvent } from "../engine/api.js";
import {
  EngineError,
  EngineNotReadyError,
  InvalidRequestError,
  PromptTooLongError,
  QueueFullError,
} from "../engine/errors.js";
import { ChatTemplate } from "../tokenizer/chat-template.js";
import { withChatTemplate } from "../tokenizer/template-override.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { checkVersion, type FromWorker, type ToWorker, type WireError } from "./engine-thread-protocol.js";
import type { EngineOptions } from "./options.js";
import { type OutputCount, outputCount } from "./output-count.js";
import { ThreadedPromptEncoder } from "./prompt-encoder.js";

/** A per-request mailbox: events pushed by the worker, pulled by `generate`'s iterator. */
class EventQueue {
  private readonly items: TokenEvent[] = [];
  private waiter: { resolve: () => void } | null = null;
  error: Error | null = null;

  push(e: TokenEvent): void {
    this.items.push(e);
    this.waiter?.resolve();
    this.waiter = null;
  }

  fail(e: Error): void {
    this.error = e;
    this.waiter?.resolve();
    this.waiter = null;
  }

  async next(): Promise<TokenEvent> {
    for (;;) {
      const e = this.items.shift();
      if (e) return e;
      if (this.error) throw this.error;
      await new Promise<void>((resolve) => {
        this.waiter = { resolve };
      });
    }
  }
}

function fromWire(e: WireError): Error {
  switch (e.code) {
    case "invalid_request":
      return new InvalidRequestError(e.message, e.param ?? null);
    case "context_length_exceeded":
      return new PromptTooLongError(e.promptTokens ?? 0, e.contextLength ?? 0);
    case "queue_full":
      return new QueueFullError(e.limit ?? 0);
    case "not_ready":
      return new EngineNotReadyError(e.message);
    default:
      return new EngineError(e.message, e.code);
  }
}

const EMPTY_STATS: EngineStats = {
  running: 0,
  peakRunning: 0,
  readiness: { ready: true },
  waiting: 0,
  kv: [],
  preemptions: 0,
  outputReserveRatio: 0,
  refused: 0,
  promptTokens: 0,
  generationTokens: 0,
  prefixCache: { enabled: false, queriedTokens: 0, hitTokens: 0, cachedBlocks: 0 },
  speculation: { enabled: false, draftTokens: 0, acceptedTokens: 0, draftSteps: 0 },
  timing: { model: 0, attention: 0, transport: 0, idle: 0, steps: 0, polling: 0 },
};

/**
 * The main thread's handle on the engine thread. Implements EngineClient by message passing;
 * holds its own tokenizer for the server (chat templates, prompt encoding).
 */
export class WorkerEngineClient implements EngineClient {
  private readonly streams = new Map<string, EventQueue>();
  /** Abort messages sent to the engine thread (they are applied in the order sent). */
  abortsSent = 0;
  private latest: EngineStats = EMPTY_STATS;
  private closed = false;
  /** The native output count, once an events message carries a number in it (null: no addon here). */
  private output: OutputCount | null | undefined;
  private closing: Promise<void> | null = null;
  private resolveClosed: (() => void) | null = null;

  private constructor(
    private readonly worker: Worker,
    readonly model: ModelInfo,
    readonly tokenizer: Tokenizer,
    readonly prompts: ThreadedPromptEncoder,
    readonly backendDescription: string,
    readonly attentionDescription: string,
    private readonly log: (line: string) => void,
  ) {
    worker.on("message", (m: FromWorker) => this.onMessage(m));
    worker.on("error", (e) =>
      this.failAll(new EngineError(`engine thread failed: ${e.message}`, "internal")),
    );
    worker.on("exit", () => {
      this.closed = true;
      this.failAll(new EngineNotReadyError("the engine has stopped"));
      this.resolveClosed?.();
    });
  }

  /** Starts the engine thread, waits until the model is loaded, and loads the tokenizer here. */
  static async start(
    options: EngineOptions,
    loadTokenizer: (ready: Extract<FromWorker, { type: "ready" }>) => Promise<Tokenizer>,
    log: (line: string) => void = () => {},
  ): Promise<WorkerEngineClient> {
    // A chat template that does not parse is refused before any thread starts.
    const template = options.chatTemplate;
    if (template) new ChatTemplate(template, "--chat-template", {});
    const worker = new Worker(new URL("./engine-thread.js", import.meta.url));
    const ready = await new Promise<Extract<FromWorker, { type: "ready" }>>((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        if (m.type === "ready") {
          worker.off("message", onMessage);
          resolve(m);
        } else if (m.type === "init_error") {
          void worker.terminate();
          reject(new Error(m.message));
        } else if (m.type === "log") log(m.message);
      };
      worker.on("message", onMessage);
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Error(`engine thread exited during start-up (code ${code})`)));
      worker.postMessage({ v: 1, type: "init", options } satisfies ToWorker);
    });
    worker.removeAllListeners("error");
    worker.removeAllListeners("exit");
    let tokenizer: Tokenizer;
    try {
      const own = await loadTokenizer(ready);
      tokenizer = template ? withChatTemplate(own, template, "--chat-template") : own;
    } catch (e) {
      await worker.terminate();
      throw e;
    }
    const prompts = new ThreadedPromptEncoder(tokenizer, ready.source, options.tokenizerPath, template);
    return new WorkerEngineClient(
      worker,
      ready.model,
      tokenizer,
      prompts,
      ready.backend,
      ready.attention,
      log,
    );
  }

  private onMessage(m: FromWorker): void {
    try {
      checkVersion(m);
    } catch (e) {
      this.failAll(e as Error);
      return;
    }
    switch (m.type) {
      case "events":
        this.latest = m.stats;
        for (const ev of m.events) this.streams.get(ev.requestId)?.push(ev);
        if (m.output !== undefined) this.sent(m.output);
        break;
      case "rejected":
        this.streams.get(m.id)?.fail(fromWire(m.error));
        break;
      case "log":
        this.log(m.message);
        break;
      case "closed":
        this.closed = true;
        this.resolveClosed?.();
        break;
      default:
        break;
    }
  }

  /**
   * Marks the batch `n` sent once the streams have written it (their writes run in the microtasks
   * after this message; setImmediate runs after those).
   */
  private sent(n: number): void {
    if (this.output === undefined) this.output = outputCount();
    const output = this.output;
    if (output) setImmediate(() => output.sent(n));
  }

  private failAll(e: Error): void {
    for (const q of this.streams.values()) q.fail(e);
  }

  private send(m: ToWorker): void {
    if (!this.closed) this.worker.postMessage(m);
  }

  async *generate(request: GenerateRequest, signal?: AbortSignal): AsyncGenerator<TokenEvent> {
    if (this.closed || this.closing) throw new EngineNotReadyError();
    if (this.streams.has(request.id))
      throw new InvalidRequestError(`duplicate request id ${request.id}`, "id");
    if (request.promptTokenIds.length >= this.model.contextLength) {
      throw new PromptTooLongError(request.promptTokenIds.length, this.model.contextLength);
    }
    signal?.throwIfAborted();
    const queue = new EventQueue();
    this.streams.set(request.id, queue);
    const onAbort = () => this.abort(request.id);
    signal?.addEventListener("abort", onAbort, { once: true });
    let finished = false;
    try {
      this.send({ v: 1, type: "generate", request });
      for (;;) {
        const ev = await queue.next();
        finished = ev.finished;
        yield ev;
        if (finished) return;
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.streams.delete(request.id);
      // The consumer went away early (break, throw, disconnect): free the request's KV.
      if (!finished && !queue.error) this.abort(request.id);
    }
  }

  stats(): EngineStats {
    return this.latest;
  }

  private abort(id: string): void {
    this.abortsSent++;
    this.send({ v: 1, type: "abort", id });
  }

  /**
   * Lets the engine run at most `afterSteps` more steps, then start none until `release()`:
   * requests and aborts are still taken in. Gives tests an order of events that no clock decides.
   */
  hold(afterSteps = 0): void {
    this.send({ v: 1, type: "hold", afterSteps });
  }

  release(): void {
    this.send({ v: 1, type: "release" });
  }

  shutdown(options: { force?: boolean } = {}): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (!this.closing) {
      this.closing = new Promise<void>((resolve) => {
        this.resolveClosed = resolve;
      }).then(async () => {
        await this.prompts.close();
        await this.worker.terminate();
      });
      this.send({ v: 1, type: "shutdown", force: options.force ?? false });
    }
    return this.closing;
  }
}
