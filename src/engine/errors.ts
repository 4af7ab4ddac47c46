/** Typed errors the engine raises, so the server can map each to its HTTP status. */
export class EngineError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A request parameter is out of range or of the wrong kind; `param` names it. */
export class InvalidRequestError extends EngineError {
  constructor(
    message: string,
    readonly param: string | null = null,
  ) {
    super(message, "invalid_request");
  }
}

export class PromptTooLongError extends EngineError {
  constructor(
    readonly promptTokens: number,
    readonly contextLength: number,
  ) {
    super(
      `prompt has ${promptTokens} tokens but the model's context is ${contextLength} tokens`,
      "context_length_exceeded",
    );
  }
}

/** The bounded waiting queue is full: refuse at once rather than hold the request. */
export class QueueFullError extends EngineError {
  constructor(readonly limit: number) {
    super(`the server is at capacity (${limit} requests waiting); retry later`, "queue_full");
  }
}

export class EngineNotReadyError extends EngineError {
  constructor(message = "the engine is not ready (loading or shutting down)") {
    super(message, "not_ready");
  }
}
