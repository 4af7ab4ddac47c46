import { FrameError } from "./errors.js";
import { MAX_RANK } from "./message.js";

/**
 * Hard limits a receiver enforces before it buffers or parses anything, and a sender checks so
 * it fails locally with a clear error instead of getting its connection closed.
 */
export interface FrameLimits {
  /** Whole frame, header included. Also bounds what a TCP receiver buffers per connection. */
  readonly maxFrameBytes: number;
  /** One tensor's data. */
  readonly maxTensorBytes: number;
  readonly maxTensors: number;
  readonly maxInts: number;
  readonly maxControlBytes: number;
}

/**
 * Defaults sized for per-layer attention traffic with room to spare: 256 tokens × 8192 hidden
 * in fp32 is 8 MiB per tensor.
 */
export const DEFAULT_LIMITS: FrameLimits = Object.freeze({
  maxFrameBytes: 64 * 1024 * 1024,
  maxTensorBytes: 32 * 1024 * 1024,
  maxTensors: 64,
  maxInts: 4096,
  maxControlBytes: 64 * 1024,
});

/** What an unauthenticated TCP peer may send: handshake frames only, so tiny. */
export const HANDSHAKE_LIMITS: FrameLimits = Object.freeze({
  maxFrameBytes: 4096,
  maxTensorBytes: 0,
  maxTensors: 0,
  maxInts: 0,
  maxControlBytes: 2048,
});

const HARD_CAP = 2 ** 31 - 1;

/** Fills in defaults and rejects nonsense, naming the offending field. */
export function resolveLimits(partial: Partial<FrameLimits> | undefined, base = DEFAULT_LIMITS): FrameLimits {
  const out = { ...base, ...partial };
  for (const [key, value] of Object.entries(out)) {
    if (!Number.isInteger(value) || value < 0 || value > HARD_CAP)
      throw new FrameError(`limits.${key} must be an integer in 0..${HARD_CAP}, got ${String(value)}`);
  }
  if (out.maxTensors > 0xffff || out.maxInts > 0xffff)
    throw new FrameError("limits.maxTensors and limits.maxInts must be at most 65535 (u16 on the wire)");
  return Object.freeze(out);
}

export { MAX_RANK };
