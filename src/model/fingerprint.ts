import { createHash } from "node:crypto";
import type { ModelConfig } from "./config.js";

/**
 * A short hash of a model's configuration (every field, keys sorted), so two processes can tell
 * that they hold the same architecture and shapes before one runs slices for the other. It says
 * nothing about the weights' values: a front end and its model workers name the same model.
 */
export function modelFingerprint(config: ModelConfig): string {
  return createHash("sha256").update(stableJson(config)).digest("hex").slice(0, 16);
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}
