import { timingSafeEqual } from "node:crypto";
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import type { EngineClient } from "../engine/api.js";
import { handleChat } from "./chat.js";
import { handleCompletion } from "./completions.js";
import { checkModel, EngineSlot, type RouteContext } from "./context.js";
import { badRequest, HttpError, toHttpError } from "./errors.js";
import { createMetrics, type ServerMetrics } from "./metrics.js";
import { detokenizeRequestSchema, parseBody, tokenizeRequestSchema } from "./schemas.js";

export interface ServerOptions {
  /** Required as `Authorization: Bearer KEY` on /v1 routes when set. */
  readonly apiKey?: string | null;
  /** Fastify logger setting (false in tests, true or pino options when serving). */
  readonly logger?: boolean | Record<string, unknown>;
  /** Largest accepted request body, bytes. */
  readonly bodyLimit?: number;
}

export interface LaminaServer extends FastifyInstance {
  /** The engine slot (for shutdown: mark draining) and metrics, for whoever runs the server. */
  readonly lamina: { slot: EngineSlot; metrics: ServerMetrics };
}

const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/**
 * The OpenAI-compatible HTTP server over an engine (or the promise of one: the server answers
 * /health with 503 until it resolves). Routes: POST /v1/completions, POST /v1/chat/completions,
 * GET /v1/models, GET /v1/models/{id}, GET /health, GET /metrics, and vLLM's POST /tokenize and
 * /detokenize, which the benchmark client uses to size prompts in the server's own tokens.
 */
export function createServer(
  engine: EngineClient | Promise<EngineClient>,
  options: ServerOptions = {},
): LaminaServer {
  const slot = new EngineSlot(engine);
  const metrics = createMetrics(() => slot.peek()?.stats() ?? null);
  const ctx: RouteContext = { slot, metrics };
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 8 * 1024 * 1024,
    // Long generations must not be cut off by an idle-request timer.
    requestTimeout: 0,
    forceCloseConnections: "idle",
  });

  acceptStrictJsonBodies(app);
  setErrorReplies(app, metrics);
  const apiKey = options.apiKey ?? null;
  if (apiKey) requireApiKey(app, apiKey);
  registerGenerationRoutes(app, ctx);
  registerStatusRoutes(app, slot, metrics);
  registerTokenizerRoutes(app, slot);

  const server = app as unknown as LaminaServer;
  (server as { lamina: LaminaServer["lamina"] }).lamina = { slot, metrics };
  return server;
}

/**
 * JSON bodies must be valid UTF-8 (fastify would otherwise substitute U+FFFD silently).
 * Only JSON bodies: any other content type is a 415, not a string that fails validation later.
 */
function acceptStrictJsonBodies(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (_req, body, done) => {
    let text: string;
    try {
      text = utf8Strict.decode(body as Buffer);
    } catch {
      done(badRequest("the request body is not valid UTF-8", null, "invalid_encoding"), undefined);
      return;
    }
    if (text.trim() === "") {
      done(badRequest("the request body is empty; expected a JSON object", null, "invalid_json"), undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(
        badRequest(`the request body is not valid JSON: ${(err as Error).message}`, null, "invalid_json"),
        undefined,
      );
    }
  });
}

/**
 * Every error leaves as an OpenAI-shaped error body and is counted by status. Only unexpected
 * server faults are logged: 503 is the expected answer while loading or draining.
 */
function setErrorReplies(app: FastifyInstance, metrics: ServerMetrics): void {
  app.setErrorHandler((err, _request, reply) => {
    const e = toHttpError(err);
    metrics.httpErrors.inc({ status: String(e.status) });
    if (e.status >= 500 && e.status !== 503) app.log.error(err);
    return reply.code(e.status).send(e.body());
  });
  app.setNotFoundHandler((request, reply) => {
    // A wrong URL is an error a client made like any other: scrapers see it counted.
    metrics.httpErrors.inc({ status: "404" });
    const e = new HttpError(
      404,
      `no route ${request.method} ${request.url}`,
      "invalid_request_error",
      null,
      "not_found",
    );
    return reply.code(404).send(e.body());
  });
}

/** `Bearer <token>` with the scheme in any case (RFC 7235: auth schemes are case-insensitive). */
const BEARER = /^bearer +(.*)$/i;

/**
 * `Authorization: Bearer KEY` on the API routes; /health and /metrics stay open for probes and
 * scrapers. The comparison takes constant time so the key cannot be guessed byte by byte.
 */
function requireApiKey(app: FastifyInstance, apiKey: string): void {
  const expected = Buffer.from(apiKey);
  app.addHook("onRequest", async (request) => {
    if (
      !request.url.startsWith("/v1/") &&
      !request.url.startsWith("/tokenize") &&
      !request.url.startsWith("/detokenize")
    )
      return;
    const header = request.headers.authorization ?? "";
    const given = Buffer.from(BEARER.exec(header)?.[1] ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new HttpError(
        401,
        header ? "Incorrect API key provided." : "Missing API key: send 'Authorization: Bearer <key>'.",
        "invalid_request_error",
        null,
        "invalid_api_key",
      );
    }
  });
}

/** The OpenAI API proper; generations are tracked so a draining shutdown can wait for them. */
function registerGenerationRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { slot } = ctx;
  app.post("/v1/completions", (request, reply) => slot.track(() => handleCompletion(ctx, request, reply)));
  app.post("/v1/chat/completions", (request, reply) => slot.track(() => handleChat(ctx, request, reply)));

  app.get("/v1/models", async () => ({ object: "list", data: [modelObject(slot.get())] }));
  // A wildcard, not `:id`, so ids with a slash ("org/name") are found sent raw or %2F-encoded.
  app.get("/v1/models/*", async (request) => {
    const engine = slot.get();
    checkModel(engine, (request.params as { "*": string })["*"]);
    return modelObject(engine);
  });
}

/** OpenAI's model object (GET /v1/models lists it, GET /v1/models/{id} returns it alone). */
function modelObject(engine: EngineClient) {
  const m = engine.model;
  return {
    id: m.id,
    object: "model",
    created: 0,
    owned_by: "lamina",
    // Extensions (vLLM names max_model_len): what a client needs to size requests.
    max_model_len: m.contextLength,
    vocab_size: m.vocabSize,
    label: m.label,
  };
}

/** What load balancers and scrapers poll: readiness (loading, failed, draining) and metrics. */
function registerStatusRoutes(app: FastifyInstance, slot: EngineSlot, metrics: ServerMetrics): void {
  app.get("/health", async (_request, reply) => {
    if (slot.draining) return reply.code(503).send({ status: "shutting_down" });
    if (slot.loadError) return reply.code(503).send({ status: "failed", error: slot.loadError.message });
    const engine = slot.peek();
    if (!engine) return reply.code(503).send({ status: "loading" });
    // Up but unable to serve (recovering, no attention capacity): say so, with the reason.
    const readiness = engine.stats().readiness;
    if (!readiness.ready) return reply.code(503).send({ status: "unavailable", reason: readiness.reason });
    return { status: "ok", model: engine.model.id };
  });

  app.get("/metrics", async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });
}

/** vLLM's /tokenize and /detokenize, so clients can count prompts in the server's own tokens. */
function registerTokenizerRoutes(app: FastifyInstance, slot: EngineSlot): void {
  app.post("/tokenize", async (request: FastifyRequest) => {
    const body = parseBody(tokenizeRequestSchema, request.body);
    const engine = slot.get();
    checkModel(engine, body.model);
    const tokens = await engine.prompts.encode(body.prompt, body.add_special_tokens ?? true);
    return { tokens, count: tokens.length, max_model_len: engine.model.contextLength };
  });

  app.post("/detokenize", async (request: FastifyRequest) => {
    const body = parseBody(detokenizeRequestSchema, request.body);
    const engine = slot.get();
    checkModel(engine, body.model);
    for (const t of body.tokens) {
      if (t >= engine.model.vocabSize) throw badRequest(`token ${t} is outside the vocabulary`, "tokens");
    }
    return { prompt: engine.tokenizer.decode(body.tokens) };
  });
}
