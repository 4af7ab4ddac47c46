/**
 * What callers of the engine (the CLI, the HTTP server) see: requests in, token events out.
 * The engine itself runs in a worker thread; these types are also the payload of its messages.
 */
export interface SamplingParams {
  /** 0 means greedy. */
  readonly temperature: number;
  /** 0 disables top-k. */
  readonly topK: number;
  /** 1 disables top-p. */
  readonly topP: number;
  /** 0 disables min-p. */
  readonly minP: number;
  /** 1 disables; >1 discourages tokens already in prompt or output (CTRL-style). */
  readonly repetitionPenalty: number;
  /** OpenAI-style, subtracted per occurrence in the output. */
  readonly frequencyPenalty: number;
  /** OpenAI-style, subtracted once if present in the output. */
  readonly presencePenalty: number;
  /**
   * OpenAI's logit_bias: added to those tokens' logits before anything else (penalties,
   * temperature, greedy's argmax); null when the request has none.
   */
  readonly logitBias: LogitBias | null;
  /** Seeded determinism: same seed, same prompt, same tokens. */
  readonly seed: number | null;
  readonly maxTokens: number;
  readonly stop: readonly string[];
  readonly stopTokenIds: readonly number[];
  /** Keep generating past EOS (benchmarks). */
  readonly ignoreEos: boolean;
  /** null: no logprobs; n ≥ 0: chosen token's logprob plus n top alternatives. */
  readonly logprobs: number | null;
  /**
   * json_object: the reply is one JSON object; json_schema: one JSON value of `jsonSchema` (the
   * subset json-schema.ts compiles); each drawn under json-constraint.ts's automaton.
   */
  readonly responseFormat: "text" | "json_object" | "json_schema";
  /** The schema of json_schema, as the request gave it (compiled where the reply is sampled). */
  readonly jsonSchema: unknown;
  /**
   * A reasoning model's think tags, for a structured reply: the constraint waits while the reply
   * thinks (from its start where the prompt opened the block, or from an `open` tag the reply
   * starts with) and starts after `close`. null: constrained from the first token.
   */
  readonly structuredThink: {
    readonly open: number;
    readonly close: number;
    readonly inside: boolean;
  } | null;
  /** Strict tool calls: each call the reply makes is drawn under its tool's schema; null: none. */
  readonly toolCalls: ToolCallConstraint | null;
}

/**
 * How a reply's tool calls are drawn when a request's tools are strict (engine/tool-call-draw.ts):
 * each call is one JSON object {"name": one of the tools, "<argsKey>": that tool's parameters},
 * under the automaton of json-constraint.ts, and the rest of the reply is drawn freely.
 */
export interface ToolCallConstraint {
  /** Each tool's name and parameters schema (the JSON Schema subset; null: any object). */
  readonly tools: readonly { readonly name: string; readonly parameters: unknown }[];
  /** The call object's key for the arguments: "arguments" (Hermes tags), "parameters" (Llama 3). */
  readonly argsKey: "arguments" | "parameters";
  /** The calls come as one JSON list of call objects (Mistral's `[TOOL_CALLS] [...]`), not one object each. */
  readonly list: boolean;
  /**
   * Calls named in a header rather than in JSON: gpt-oss's harmony messages (a header saying
   * `to=functions.NAME`, the message's body the arguments, then `close`, `<|call|>`) and Mistral's
   * `[TOOL_CALLS]NAME[ARGS]{...}` (the header is the name). NAME is drawn among the tools' names,
   * the body under that tool's schema. Null for the JSON formats.
   */
  readonly named: {
    /** The token that opens a header (harmony's `<|start|>`, Mistral's `[TOOL_CALLS]`). */
    readonly start: number;
    /** The token that ends a header; the arguments follow (`<|message|>`, `[ARGS]`). */
    readonly message: number;
    /** What precedes the name in a header ("to=functions."; "": the whole header is the name). */
    readonly recipient: string;
    /** The header text the reply continues (the prompt ended inside one), or null: it starts in text. */
    readonly header: string | null;
    /** The tool whose arguments the reply starts in (the prompt named it), or null. */
    readonly calling: string | null;
  } | null;
  /** The token that opens a call (Hermes `<tool_call>`); null: a call is the whole reply (Llama 3). */
  readonly open: number | null;
  /** The token that closes a call, drawn as soon as its object is whole; null: the reply ends there. */
  readonly close: number | null;
  /**
   * The call's text the prompt already wrote (tool_choice required or named: the reply continues a
   * call the prompt opened; with `open`, the text after that token), or null: the model decides.
   */
  readonly opened: string | null;
}

/**
 * A resolved logit_bias: biases[i] is added to the logit of token ids[i] at every step. Parallel
 * typed arrays so applying it allocates nothing and it crosses to the engine thread as is.
 */
export interface LogitBias {
  readonly ids: Int32Array;
  readonly biases: Float32Array;
}

export interface TokenLogprob {
  readonly tokenId: number;
  readonly logprob: number;
  readonly top: readonly { readonly tokenId: number; readonly logprob: number }[];
}

export type FinishReason = "stop" | "length" | "abort" | "error";

export interface GenerateRequest {
  readonly id: string;
  readonly promptTokenIds: readonly number[];
  readonly params: SamplingParams;
}

/** One step's news for one request. */
export interface TokenEvent {
  readonly requestId: string;
  /** Tokens produced since the last event. */
  readonly tokenIds: readonly number[];
  /** Text that became final since the last event (held back while a stop string may still match). */
  readonly text: string;
  readonly logprobs?: readonly TokenLogprob[];
  readonly finished: boolean;
  readonly finishReason?: FinishReason;
  readonly error?: string;
  /** The error is the server's state (no attention capacity), not the request's: retry later. */
  readonly unavailable?: boolean;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** On a request's first event: seconds it waited before it was first scheduled. */
  readonly queueTime?: number;
  /** On a request's first event: prompt tokens whose KV came from the prefix cache. */
  readonly cachedTokens?: number;
}

export interface ModelInfo {
  /** The id served as `model` in the OpenAI API. */
  readonly id: string;
  /** Human-readable, e.g. "demo model (random weights, not a trained model)". */
  readonly label: string;
  readonly contextLength: number;
  readonly vocabSize: number;
  /** The model's generation_config defaults (temperature, top_p, ...), for resolving request parameters. */
  readonly generation?: import("../model/types.js").GenerationDefaults;
}

export type { OffloadStats } from "../attention/service.js";

export interface Readiness {
  readonly ready: boolean;
  readonly reason?: string;
}

/** Live numbers for /metrics and logs. */
export interface EngineStats {
  readonly running: number;
  /** The most sequences running at once since start (how well requests were batched). */
  readonly peakRunning: number;
  /** Whether the engine can serve now; when not, why (no attention capacity, recovering). */
  readonly readiness: Readiness;
  readonly waiting: number;
  readonly kv: readonly {
    readonly worker: string;
    readonly usedBlocks: number;
    readonly totalBlocks: number;
    /** Tokens this worker's KV cache holds (its blocks times their size). */
    readonly capacityTokens: number;
  }[];
  readonly preemptions: number;
  /** Share of a request's remaining output reserved in KV at admission now (util/output-reserve.ts). */
  readonly outputReserveRatio: number;
  readonly refused: number;
  readonly promptTokens: number;
  readonly generationTokens: number;
  /** Prefix caching: prompt tokens admitted, those the cache held, and cached blocks now (all 0 when off). */
  readonly prefixCache: {
    readonly enabled: boolean;
    readonly queriedTokens: number;
    readonly hitTokens: number;
    readonly cachedBlocks: number;
  };
  /**
   * Speculative decoding (engine/speculative.ts): draft tokens proposed, those the model drew too,
   * and the steps that carried a draft (all 0 when off).
   */
  readonly speculation: {
    readonly enabled: boolean;
    readonly draftTokens: number;
    readonly acceptedTokens: number;
    readonly draftSteps: number;
  };
  /** Cumulative seconds spent per step phase since start, per side (see runtime step breakdown). */
  readonly timing: {
    readonly model: number;
    readonly attention: number;
    readonly transport: number;
    readonly idle: number;
    readonly steps: number;
    /** Seconds the model side spent busy-polling its attention links (0 in-process). */
    readonly polling: number;
  };
  /** Present under --mode pd / adrenaline. */
  readonly offload?: import("../attention/service.js").OffloadStats;
  /** Present with model workers on a plane over TCP: this process's frames and bytes each way. */
  readonly modelPlane?: import("../runtime/model-executor.js").ModelPlaneStats;
}

/**
 * Prompt encoding off the caller's hot thread: large inputs are encoded elsewhere, so no single
 * request can stall the HTTP event loop.
 */
export interface PromptEncoder {
  /** A lower bound on the tokens `text` encodes to, cheap to compute (0 when unknown). */
  minTokens(text: string): number;
  encode(text: string, addSpecialTokens: boolean): Promise<number[]>;
  /** The conversation through the chat template (or a plain transcript), as prompt ids. */
  /** `variables`: more variables for the chat template (ChatTemplateOptions.variables). */
  chat(
    turns: readonly import("../tokenizer/types.js").ChatMessage[],
    variables?: Readonly<Record<string, unknown>>,
  ): Promise<number[]>;
}

/**
 * The engine as the server and CLI use it. `generate` yields events until one has
 * `finished: true`; aborting the signal (client gone) frees the request's KV everywhere.
 * Errors: see engine/errors.ts (QueueFullError, PromptTooLongError, InvalidRequestError,
 * EngineNotReadyError).
 */
export interface EngineClient {
  readonly model: ModelInfo;
  readonly tokenizer: import("../tokenizer/types.js").Tokenizer;
  readonly prompts: PromptEncoder;
  generate(request: GenerateRequest, signal?: AbortSignal): AsyncIterable<TokenEvent>;
  stats(): EngineStats;
  /** Stops accepting, finishes (or with force, cancels) in-flight requests, frees everything. */
  shutdown(options?: { force?: boolean }): Promise<void>;
}
