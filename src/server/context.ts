import type { EngineClient } from "../engine/api.js";
import { HttpError, notReady } from "./errors.js";
import { TokenTexts } from "./logprobs.js";
import type { ServerMetrics } from "./metrics.js";

/**
 * The engine as the routes see it: absent while it loads (routes answer 503), failed if
 * loading threw (503 with the reason), draining once shutdown began.
 */
export class EngineSlot {
  private current: EngineClient | null = null;
  private failure: Error | null = null;
  private texts: TokenTexts | null = null;
  draining = false;

  constructor(engine: EngineClient | Promise<EngineClient>) {
    Promise.resolve(engine).then(
      (e) => {
        this.current = e;
        this.texts = new TokenTexts(e.tokenizer);
      },
      (err: unknown) => {
        this.failure = err instanceof Error ? err : new Error(String(err));
      },
    );
  }

  /** The engine if it is loaded, else null (for /metrics and /health). */
  peek(): EngineClient | null {
    return this.current;
  }

  get loadError(): Error | null {
    return this.failure;
  }

  /** The engine for serving a request; throws a 503 when there is none to serve with. */
  get(): EngineClient {
    if (this.draining) throw notReady("the server is shutting down");
    if (this.failure) throw notReady(`the engine failed to load: ${this.failure.message}`);
    if (!this.current) throw notReady("the engine is still loading");
    return this.current;
  }

  private active = 0;
  private idleWaiters: (() => void)[] = [];

  /** Runs one request's handler, counting it as in flight until it has fully responded. */
  async track<T>(handler: () => Promise<T>): Promise<T> {
    this.active++;
    try {
      return await handler();
    } finally {
      if (--this.active === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  get inFlight(): number {
    return this.active;
  }

  /** Resolves when no request is in flight. */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  tokenTexts(): TokenTexts {
    this.get();
    return this.texts!;
  }
}

export interface RouteContext {
  readonly slot: EngineSlot;
  readonly metrics: ServerMetrics;
}

/** 404 in OpenAI's words when a request names a model this server does not serve. */
export function checkModel(engine: EngineClient, model: string | undefined | null): void {
  if (model == null || model === engine.model.id) return;
  throw new HttpError(
    404,
    `The model '${model}' does not exist; this server serves '${engine.model.id}'`,
    "invalid_request_error",
    "model",
    "model_not_found",
  );
}

let counter = 0;
/** Request ids unique within this process, prefixed as OpenAI's are (cmpl-, chatcmpl-). */
export function requestId(prefix: string): string {
  counter = (counter + 1) % 0x7fffffff;
  return `${prefix}-${Date.now().toString(36)}${counter.toString(36).padStart(5, "0")}`;
}
