import {
  EngineError,
  EngineNotReadyError,
  InvalidRequestError,
  PromptTooLongError,
  QueueFullError,
} from "../engine/errors.js";

/** The body OpenAI's API (and its client libraries) expect on every error. */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** An error that already knows its HTTP status and OpenAI error fields. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = "HttpError";
  }

  body(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function badRequest(
  message: string,
  param: string | null = null,
  code: string | null = null,
): HttpError {
  return new HttpError(400, message, "invalid_request_error", param, code);
}

/** A prompt the context cannot hold; `atLeast` when only a lower bound on its tokens is known. */
export function promptTooLong(
  tokens: number,
  contextLength: number,
  param: string,
  atLeast = false,
): HttpError {
  return badRequest(
    `the prompt has ${atLeast ? "at least " : ""}${tokens} tokens but the model's context is ${contextLength} tokens`,
    param,
    "context_length_exceeded",
  );
}

export function notReady(message = "the engine is not ready (loading or shutting down)"): HttpError {
  return new HttpError(503, message, "service_unavailable", null, "not_ready");
}

/**
 * Maps anything thrown while serving a request to the status and OpenAI error fields a client
 * should see. Engine errors carry their own meaning; unknown errors are 500s whose message is
 * kept (this is a local server, and the message is what makes a failure diagnosable).
 */
export function toHttpError(err: unknown, promptParam = "prompt"): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof QueueFullError)
    return new HttpError(429, err.message, "rate_limit_error", null, err.code);
  if (err instanceof PromptTooLongError) return badRequest(err.message, promptParam, err.code);
  if (err instanceof InvalidRequestError) return badRequest(err.message, err.param, err.code);
  if (err instanceof EngineNotReadyError) return notReady(err.message);
  if (err instanceof EngineError) return new HttpError(500, err.message, "server_error", null, err.code);
  // Errors that crossed the engine's worker-thread boundary lose their class but keep name/code.
  if (err && typeof err === "object") {
    const e = err as { name?: unknown; message?: unknown; code?: unknown; param?: unknown; limit?: unknown };
    const message = typeof e.message === "string" ? e.message : String(err);
    switch (e.name) {
      case "QueueFullError":
        return new HttpError(429, message, "rate_limit_error", null, "queue_full");
      case "PromptTooLongError":
        return badRequest(message, promptParam, "context_length_exceeded");
      case "InvalidRequestError":
        return badRequest(message, typeof e.param === "string" ? e.param : null, "invalid_request");
      case "EngineNotReadyError":
        return notReady(message);
    }
    // Fastify's own client errors (bad content type, body too large, unparsable JSON) carry a 4xx.
    const status = (err as { statusCode?: unknown }).statusCode;
    if (typeof status === "number" && status >= 400 && status < 500) {
      return new HttpError(
        status,
        message,
        "invalid_request_error",
        null,
        typeof e.code === "string" ? e.code : null,
      );
    }
    return new HttpError(500, message, "server_error");
  }
  return new HttpError(500, String(err), "server_error");
}
