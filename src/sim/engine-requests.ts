import type { Trace } from "./trace.js";

/** Where a request stands; the values are what RequestTable.state holds. */
export const RequestState = {
  /** Not arrived yet, or on a prefill instance (PD/Adrenaline) or its KV in transfer. */
  Unrouted: 0,
  /** In a decode instance's waiting queue (new, or preempted). */
  Queued: 1,
  /** Admitted; its context is being prefilled in chunks (colocated prompt, or recomputation). */
  Prefilling: 2,
  Decoding: 3,
  Done: 4,
  /** Larger than any instance's KV, so refused on arrival. */
  Rejected: 5,
} as const;
export type RequestState = (typeof RequestState)[keyof typeof RequestState];

/** A request's KV pool on its decode instance. */
export const LOCAL_POOL = 0;
/** Adrenaline's KV on the prefill instances. */
export const REMOTE_POOL = 1;
export type PoolIndex = typeof LOCAL_POOL | typeof REMOTE_POOL;

/** No decode instance yet. */
export const NO_INSTANCE = -1;

/**
 * Per-request state in flat typed arrays indexed by trace position: the loop touches a request only
 * when it is admitted, finishes a prefill chunk, completes or is preempted.
 */
export class RequestTable {
  readonly count: number;
  readonly arrival: Float64Array;
  readonly prompt: Int32Array;
  readonly output: Int32Array;
  readonly state: Uint8Array;
  /** Tokens generated, as of the request's last change of state (a decoding request's live count follows from finishStep). */
  readonly generated: Int32Array;
  /** The step of its instance at which a decoding request has all its tokens. */
  readonly finishStep: Float64Array;
  /** 1 after a preemption: its whole context must be prefilled again. */
  readonly recompute: Uint8Array;
  readonly instanceOf: Int32Array;
  readonly poolOf: Uint8Array;
  readonly prefillLeft: Int32Array;
  readonly prefillDone: Int32Array;
  readonly finishTime: Float64Array;
  /** Admission sequence number, telling a live prefill entry from one an earlier admission left behind. */
  readonly admitSeq: Float64Array;

  constructor(trace: Trace) {
    const n = trace.arrival.length;
    this.count = n;
    this.arrival = trace.arrival;
    this.prompt = trace.prompt;
    this.output = trace.output;
    this.state = new Uint8Array(n);
    this.generated = new Int32Array(n);
    this.finishStep = new Float64Array(n);
    this.recompute = new Uint8Array(n);
    this.instanceOf = new Int32Array(n).fill(NO_INSTANCE);
    this.poolOf = new Uint8Array(n);
    this.prefillLeft = new Int32Array(n);
    this.prefillDone = new Int32Array(n);
    this.finishTime = new Float64Array(n);
    this.admitSeq = new Float64Array(n);
  }

  /** Context (prompt and generated tokens) of request `id` when its instance is at step `step`. */
  context(id: number, step: number): number {
    if (this.state[id] === RequestState.Decoding)
      return this.prompt[id]! + this.output[id]! - (this.finishStep[id]! - step);
    return this.prompt[id]! + this.generated[id]!;
  }

  /** KV held by a request being prefilled: its context, plus its first token when it has none yet. */
  prefillReserve(id: number): number {
    return this.prompt[id]! + this.generated[id]! + (this.generated[id] === 0 ? 1 : 0);
  }
}
