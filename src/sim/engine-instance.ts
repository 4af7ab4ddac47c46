import { MinHeap } from "./heap.js";
import type { DecodeInstanceModel } from "./instances.js";

/** A FIFO of request ids with a front stack for preempted requests (they resume first). */
export class RequestQueue {
  private items: number[] = [];
  private head = 0;
  private front: number[] = [];
  tokens = 0;

  get length(): number {
    return this.items.length - this.head + this.front.length;
  }
  push(id: number, tokens: number): void {
    this.items.push(id);
    this.tokens += tokens;
  }
  pushFront(id: number, tokens: number): void {
    this.front.push(id);
    this.tokens += tokens;
  }
  peek(): number {
    return this.front.length > 0 ? this.front[this.front.length - 1]! : this.items[this.head]!;
  }
  shift(tokens: number): void {
    this.tokens -= tokens;
    if (this.front.length > 0) this.front.pop();
    else if (++this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/** One KV pool of a decode instance (its own, or Adrenaline's remote one). */
export class KvPool {
  /** Decoding requests held here, and the sum of their contexts. */
  decoding = 0;
  decodingContext = 0;
  /** KV tokens in use (decoding contexts and prefill reservations). */
  used = 0;
  /** Admission order, for choosing the newest request to preempt (stale entries skipped). */
  order: number[] = [];
  constructor(readonly capacity: number) {}
}

/** What a decode instance is doing between events. */
export type InstancePhase = "idle" | "start-scheduled" | "stepping";

/** Why admission stopped before a step. */
export type AdmissionOutcome = "queue-empty" | "batch-full" | "kv-full";

/** A decode instance's mutable state in the event loop. */
export class InstanceState {
  readonly queue = new RequestQueue();
  readonly pools: readonly [KvPool, KvPool];
  /** Decoding requests keyed by the step at which they finish. */
  readonly finish = new MinHeap(256);
  readonly prefillFifo: number[] = [];
  /** Admission sequence number of each prefillFifo entry (a re-admitted request leaves a stale entry behind). */
  readonly prefillSeq: number[] = [];
  prefillHead = 0;
  /** Requests admitted and still being prefilled (prefillFifo also holds stale entries). */
  prefilling = 0;
  phase: InstancePhase = "idle";
  /** Steps completed. */
  step = 0;
  /** Duration of the step under way. */
  dt = 0;
  /** The prefill chunks riding on the step under way: request ids and tokens. */
  readonly chunkIds: number[] = [];
  readonly chunkLens: number[] = [];
  constructor(
    readonly index: number,
    readonly model: DecodeInstanceModel,
  ) {
    this.pools = [new KvPool(model.localCapacity), new KvPool(model.remoteCapacity)];
  }
  get capacity(): number {
    return this.model.localCapacity + this.model.remoteCapacity;
  }
  get decoding(): number {
    return this.pools[0].decoding + this.pools[1].decoding;
  }
}
