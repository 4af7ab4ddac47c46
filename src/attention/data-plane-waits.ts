import type { DataPlaneLink } from "./data-plane-link.js";
import type { DataPlaneAddon } from "./data-plane-native.js";
import type { AttentionDrive } from "./service.js";
import type { SubStep } from "./sub-step.js";

/** One worker as the waits see it: its data plane, its rows of a micro-batch, its output columns. */
export interface DataPlaneTarget {
  /** Null once the worker was lost (its waits have been failed by then). */
  readonly dp: DataPlaneLink | null;
  subOf(microBatch: number): SubStep;
  /** First column of this worker's heads in the full output row. */
  readonly outColOff: number;
}

/** A micro-batch's layer awaiting OUT from some workers. */
interface Waiting<T> {
  readonly targets: T[];
  count: number;
  readonly taken: Uint8Array;
  left: number;
  out: Float32Array;
  active: boolean;
  resolve: (() => void) | null;
  reject: ((e: Error) => void) | null;
  error: Error | null;
}

export interface DataPlaneWaitsHooks<T> {
  readonly timeoutMs: () => number;
  /** Attention compute a worker reported with its OUT. */
  readonly onReply: (micros: number) => void;
  /** A worker failed, died or stayed silent past the timeout: the owner declares it lost. */
  readonly onLost: (target: T, reason: string) => void;
}

/**
 * The model side's waits for OUT replies on the native data plane. A depth-1 engine waits
 * synchronously (`waitNow`, no promise at all); with several micro-batches in flight each layer
 * gets a promise that `pump` resolves: one native wait (spin, then futex, inside the engine
 * thread) across every worker with a reply outstanding, then every ready reply is scattered into
 * its micro-batch's output rows.
 */
export class DataPlaneWaits<T extends DataPlaneTarget> implements AttentionDrive {
  private readonly waiting: Waiting<T>[];
  /** Scratch for one pump: client ids and their targets. */
  private readonly ids: Int32Array;
  private readonly idTargets: T[] = [];

  constructor(
    private readonly addon: DataPlaneAddon,
    microBatches: number,
    maxTargets: number,
    /** Floats per row of the full output (all heads). */
    private readonly outWidth: number,
    private readonly hooks: DataPlaneWaitsHooks<T>,
  ) {
    this.waiting = Array.from({ length: microBatches }, () => ({
      targets: [],
      count: 0,
      taken: new Uint8Array(maxTargets),
      left: 0,
      out: new Float32Array(0),
      active: false,
      resolve: null,
      reject: null,
      error: null,
    }));
    this.ids = new Int32Array(maxTargets * microBatches);
  }

  /**
   * Registers the layer of `mb` whose KV was just posted to the first `count` of `targets`;
   * resolves once all replied.
   */
  expect(mb: number, targets: readonly T[], count: number, out: Float32Array): Promise<void> {
    const w = this.arm(mb, targets, count, out);
    return new Promise<void>((resolve, reject) => {
      w.resolve = resolve;
      w.reject = reject;
    });
  }

  /** The same, waited for here and now (depth 1: nothing else could run meanwhile). */
  waitNow(mb: number, targets: readonly T[], count: number, out: Float32Array): void {
    const w = this.arm(mb, targets, count, out);
    for (;;) {
      this.land(mb, w);
      if (w.error) throw w.error;
      if (!w.active) return;
      this.waitOnce();
    }
  }

  blocked(): number {
    let n = 0;
    for (const w of this.waiting) if (w.active && w.resolve) n++;
    return n;
  }

  pump(): void {
    this.waitOnce();
    for (let mb = 0; mb < this.waiting.length; mb++) this.land(mb, this.waiting[mb]!);
  }

  /** Every layer still waiting fails with `error` (a worker it needs was lost). */
  failAll(error: Error): void {
    for (const w of this.waiting) {
      if (!w.active) continue;
      w.active = false;
      if (w.reject) w.reject(error);
      else w.error = error;
      w.resolve = null;
      w.reject = null;
    }
  }

  // The targets are copied in place: only the first `count` entries are this layer's (an array
  // emptied by `length = 0` and pushed again costs the engine thread µs a layer).
  private arm(mb: number, targets: readonly T[], count: number, out: Float32Array): Waiting<T> {
    const w = this.waiting[mb]!;
    for (let i = 0; i < count; i++) w.targets[i] = targets[i]!;
    w.count = count;
    w.taken.fill(0);
    w.left = count;
    w.out = out;
    w.active = count > 0;
    w.resolve = null;
    w.reject = null;
    w.error = null;
    return w;
  }

  /** Takes every ready reply of `mb`; settles the layer when the last one is in. */
  private land(mb: number, w: Waiting<T>): void {
    if (!w.active) return;
    for (let i = 0; i < w.count; i++) {
      const t = w.targets[i]!;
      if (w.taken[i] || !t.dp?.ready(mb)) continue;
      this.hooks.onReply(t.dp.take(mb, w.out, t.subOf(mb), this.outWidth, t.outColOff));
      w.taken[i] = 1;
      w.left--;
    }
    if (w.left > 0) return;
    w.active = false;
    const resolve = w.resolve;
    w.resolve = null;
    w.reject = null;
    resolve?.();
  }

  /** One native wait across every worker some active layer still needs. */
  private waitOnce(): void {
    // The first n entries of ids and idTargets are this wait's, written in place.
    let n = 0;
    for (const w of this.waiting) {
      if (!w.active) continue;
      for (let i = 0; i < w.count; i++) {
        if (w.taken[i]) continue;
        const t = w.targets[i]!;
        if (!t.dp || this.listed(t, n)) continue;
        this.ids[n] = t.dp.id;
        this.idTargets[n++] = t;
      }
    }
    if (n === 0) return;
    const timeoutMs = this.hooks.timeoutMs();
    const code = this.addon.dpWait(this.ids, n, timeoutMs);
    if (code >= 0) return;
    if (code === -1) {
      // Silence from every one of them: each is declared lost (a live one would have answered).
      for (const t of this.idTargets.slice(0, n))
        if (!this.anyReady(t)) this.hooks.onLost(t, `no reply within ${timeoutMs} ms`);
      return;
    }
    const t = this.idTargets[-(code + 2)]!;
    this.hooks.onLost(t, t.dp?.failure() || "its data plane failed");
  }

  /** Whether t is among the first n of this wait's targets. */
  private listed(t: T, n: number): boolean {
    for (let i = 0; i < n; i++) if (this.idTargets[i] === t) return true;
    return false;
  }

  private anyReady(t: T): boolean {
    for (let mb = 0; mb < this.waiting.length; mb++)
      if (this.waiting[mb]!.active && t.dp?.ready(mb)) return true;
    return false;
  }
}
