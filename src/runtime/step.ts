import type { AttentionStep } from "../attention/service.js";

/**
 * One forward pass's input, preallocated at the engine's maximum sizes and refilled every step
 * (nothing is allocated per token). Tokens of a sequence are contiguous and in position order.
 */
export interface ModelStep extends AttentionStep {
  /** [nTokens] token ids. */
  readonly tokens: Int32Array;
  /**
   * [nLogits] rows (token indices) whose logits are wanted: the last token of each sampling
   * sequence, and each draft token of a speculative one.
   */
  readonly logitRows: Int32Array;
  nLogits: number;
}

/** A step for micro-batch `microBatch`, preallocated at the largest sizes (`maxLogitRows`: maxSeqs and the drafts' rows). */
export function createModelStep(
  maxTokens: number,
  maxSeqs: number,
  microBatch: number,
  maxLogitRows = maxSeqs,
): ModelStep {
  return {
    microBatch,
    nTokens: 0,
    nSeqs: 0,
    nLogits: 0,
    alone: false,
    tokens: new Int32Array(maxTokens),
    positions: new Int32Array(maxTokens),
    seqIds: new Int32Array(maxSeqs),
    seqStart: new Int32Array(maxSeqs + 1),
    logitRows: new Int32Array(maxLogitRows),
  };
}

/** Where a step's wall time went, accumulated in seconds. */
export interface StepTiming {
  model: number;
  attention: number;
  transport: number;
  idle: number;
  steps: number;
}

export function createStepTiming(): StepTiming {
  return { model: 0, attention: 0, transport: 0, idle: 0, steps: 0 };
}
