import type { AttentionDrive, AttentionService } from "../attention/service.js";
import type { ModelStep, StepTiming } from "./step.js";

/** The front end's links of a model plane over TCP (plane-net.ts). */
export interface ModelPlaneStats {
  readonly framesIn: number;
  readonly framesOut: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** Frames dropped by their guard (a step given up in a recovery). */
  readonly stale: number;
  readonly malformed: number;
}

/**
 * Who runs the model slices of a step, as the engine sees it: the in-process `SliceExecutor`, or
 * model workers in other processes (`ModelWorkerExecutor`). `forward` resolves with the logits
 * rows of the step ([nLogits, vocab] valid).
 */
export interface ModelExecutor {
  forward(step: ModelStep, attention: AttentionService): Promise<Float32Array>;
  /** Model and attention-wait seconds, and steps of the busiest micro-batch. */
  timing(): StepTiming;
  /** Present while forward passes complete only when driven (see AttentionDrive). */
  readonly drive?: AttentionDrive | null;
  /** Present where model workers can be lost and replaced. */
  readonly recovery?: ModelRecovery;
  /** A model plane over TCP: its link counters (absent or null otherwise). */
  planeStats?(): ModelPlaneStats | null;
  close?(): Promise<void>;
}

/** Capability: model workers can be lost, and replaced without losing any KV. */
export interface ModelRecovery {
  /** A model worker was lost (even between steps): call `recover` before the next launch. */
  needsRecovery(): boolean;
  /** Replaces lost model workers and makes every micro-batch launchable again. */
  recover(): Promise<void>;
}

/**
 * A model worker died or stalled while micro-batches were in flight. Its steps are run again
 * (their sequences had not advanced), so no request sees it.
 */
export class ModelWorkerLostError extends Error {
  constructor(
    readonly worker: number,
    reason: string,
  ) {
    super(`model worker ${worker} lost: ${reason}`);
    this.name = "ModelWorkerLostError";
  }
}
