/**
 * The PD / Adrenaline benchmark setup, shared by bench/pd/pd-vs-adrenaline and the calibration:
 * a random-weight Llama whose KV, not compute, limits the decode batch, the engine sizes and KV
 * budgets, and a slice of the Azure conversation trace (arrival times × 1/rateScale, lengths
 * clamped to the served context).
 */
import { readFileSync } from "node:fs";
import type { EngineOptions } from "../../src/placement/options.js";
import { sharedDataPath } from "../../src/util/shared-data.js";

// 16 KiB of KV per token; the decode instance's 32 MiB hold 3 requests at the served context
// (640), while it may batch 16; the prefill executor holds 96 MiB.
export const PD_SHAPE = {
  hidden: 512,
  layers: 8,
  heads: 8,
  kvHeads: 8,
  intermediate: 1376,
  maxPositions: 1024,
  dtype: "bf16",
} as const;
export const PD_CONTEXT = 640;
export const PD_MAX_OUTPUT = 128;
const MB = 1 << 20;
export const PD_SIZES: EngineOptions = {
  maxModelLen: PD_CONTEXT,
  maxRunning: 16,
  maxTokensPerStep: 512,
  kvMemory: 32 * MB,
  prefillKvMemory: 96 * MB,
  threads: 1,
  prefillThreads: 1,
};
/** KV bytes per block of PD_SHAPE (f16 K and V, all layers, 16 tokens). */
export const PD_BLOCK_BYTES =
  2 * PD_SHAPE.layers * PD_SHAPE.kvHeads * (PD_SHAPE.hidden / PD_SHAPE.heads) * 2 * 16;

export interface TraceRequest {
  readonly at: number;
  readonly prompt: number;
  readonly output: number;
}

/** The first `n` requests of the Azure conversation trace, lengths clamped to the context. */
export function pdTraceSlice(n: number, rateScale: number): TraceRequest[] {
  const csv = readFileSync(sharedDataPath("traces", "azure-2023", "AzureLLMInferenceTrace_conv.csv"), "utf8");
  const rows = csv
    .trim()
    .split("\n")
    .slice(1, n + 1);
  const t0 = Date.parse(`${rows[0]!.split(",")[0]!.slice(0, 23)}Z`);
  return rows.map((r) => {
    const [ts, ctx, gen] = r.split(",");
    const output = Math.max(1, Math.min(Number(gen), PD_MAX_OUTPUT));
    return {
      at: (Date.parse(`${ts!.slice(0, 23)}Z`) - t0) / 1000 / rateScale,
      prompt: Math.max(2, Math.min(Number(ctx), PD_CONTEXT - output)),
      output,
    };
  });
}
