import type { EngineStats, GenerateRequest, ModelInfo, TokenEvent } from "../engine/api.js";
import type { ModelSource } from "../model/types.js";
import type { EngineOptions } from "./options.js";

/**
 * Messages between the main thread (HTTP server, CLI) and the engine's worker thread. Versioned
 * so a mismatched build fails loudly instead of misreading fields.
 */
export const ENGINE_PROTOCOL_VERSION = 1;

export type ToWorker =
  | { readonly v: 1; readonly type: "init"; readonly options: EngineOptions }
  | { readonly v: 1; readonly type: "generate"; readonly request: GenerateRequest }
  | { readonly v: 1; readonly type: "abort"; readonly id: string }
  | { readonly v: 1; readonly type: "shutdown"; readonly force: boolean }
  /** Run at most `afterSteps` more steps, then start none until "release" (tests order events by it). */
  | { readonly v: 1; readonly type: "hold"; readonly afterSteps: number }
  | { readonly v: 1; readonly type: "release" };

export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly code: string;
  readonly param?: string | null;
  readonly limit?: number;
  readonly promptTokens?: number;
  readonly contextLength?: number;
}

export type FromWorker =
  | {
      readonly v: 1;
      readonly type: "ready";
      readonly model: ModelInfo;
      readonly source: ModelSource;
      readonly backend: string;
      readonly attention: string;
    }
  | { readonly v: 1; readonly type: "init_error"; readonly message: string }
  | { readonly v: 1; readonly type: "log"; readonly message: string }
  | {
      readonly v: 1;
      readonly type: "events";
      readonly events: readonly TokenEvent[];
      readonly stats: EngineStats;
      /** A batch with a first token: its number in the native output count (output-count.ts). */
      readonly output?: number;
    }
  | { readonly v: 1; readonly type: "rejected"; readonly id: string; readonly error: WireError }
  | { readonly v: 1; readonly type: "closed" };

export function checkVersion(m: { v?: unknown; type?: unknown }): void {
  if (m.v !== ENGINE_PROTOCOL_VERSION || typeof m.type !== "string") {
    throw new Error(
      `engine protocol mismatch: expected version ${ENGINE_PROTOCOL_VERSION}, got ${JSON.stringify(m.v)}`,
    );
  }
}
