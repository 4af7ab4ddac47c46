import type { PrefillServerModel } from "./instances.js";

/**
 * The prefill instances of PD and Adrenaline: one FIFO of arrived prompts, batched up to a token
 * budget onto whichever instance is idle.
 */
export class PrefillStage {
  private readonly queue: number[] = [];
  private head = 0;
  private readonly batches: number[][];
  private readonly busy: Uint8Array;

  constructor(
    private readonly servers: readonly PrefillServerModel[],
    private readonly batchTokens: number,
    private readonly prompt: Int32Array,
  ) {
    this.batches = servers.map(() => []);
    this.busy = new Uint8Array(servers.length);
  }

  get instances(): number {
    return this.servers.length;
  }

  get waiting(): boolean {
    return this.head < this.queue.length;
  }

  enqueue(id: number): void {
    this.queue.push(id);
  }

  /** Starts the next batch on instance k if it is idle and prompts wait; returns its duration, or null. */
  tryStart(k: number): number | null {
    if (this.busy[k] || !this.waiting) return null;
    const batch = this.batches[k]!;
    batch.length = 0;
    let tokens = 0;
    let work = 0;
    while (this.head < this.queue.length) {
      const id = this.queue[this.head]!;
      const p = this.prompt[id]!;
      if (batch.length > 0 && tokens + p > this.batchTokens) break;
      batch.push(id);
      tokens += p;
      work += p * p;
      this.head++;
    }
    this.busy[k] = 1;
    return this.servers[k]!.time(tokens, work);
  }

  /** Frees instance k; returns the requests its batch prefilled. */
  finish(k: number): readonly number[] {
    this.busy[k] = 0;
    return this.batches[k]!;
  }
}
