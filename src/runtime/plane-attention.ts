import { DataPlaneLink } from "../attention/data-plane-link.js";
import type { DataPlaneAddon } from "../attention/data-plane-native.js";
import type { SharedPlaneTarget } from "../attention/remote-service.js";
import type { AttentionStep } from "../attention/service.js";
import { replicaOf } from "../util/rotation.js";
import { B, type PlaneBatch } from "./model-plane.js";

/**
 * A model worker's side of the attention exchange: the attention workers' data planes, into which
 * the front end posted each step's STEP. Same-host workers' segments are mapped here too; workers
 * reached over TCP get a socket of this process's own (peer 1 + replica). The replica running slice
 * k of a micro-batch posts its layer's q and k/v; the replica running slice k + 1, in this process
 * or another, takes the output (over TCP the KV names that replica, and the OUT goes to it). Each
 * call is one native call per attention worker.
 */
export class PlaneAttention {
  private readonly links: DataPlaneLink[] = [];
  /** Client ids for one native wait across the links. */
  readonly ids: Int32Array;

  constructor(
    private readonly addon: DataPlaneAddon,
    readonly targets: readonly SharedPlaneTarget[],
    /** Floats per token of full q/out rows and of full k/v rows. */
    private readonly qWidth: number,
    private readonly kvWidth: number,
    spinUs: number,
    private readonly timeoutMs: number,
    /** This process's replica, and how many rotate (the OUT of slice k's layer goes to slice k + 1's). */
    replica: number,
    private readonly replicas: number,
  ) {
    try {
      for (const t of targets) {
        if (t.tcp) {
          const { host, port, token } = t.tcp;
          this.links.push(
            DataPlaneLink.connectTcp(addon, host, port, token, t.shape, spinUs, timeoutMs, 1 + replica),
          );
        } else if (t.segment) this.links.push(DataPlaneLink.attach(addon, t.segment, t.shape, spinUs));
        else throw new Error("an attention worker target names neither a segment nor a socket");
      }
    } catch (e) {
      this.close();
      throw e;
    }
    this.ids = Int32Array.from(this.links.map((l) => l.id));
  }

  /** q of layer `layer` to every attention worker serving some of the batch's rows. */
  postQ(batch: PlaneBatch, step: AttentionStep, layer: number, q: Float32Array): void {
    for (let t = 0; t < this.links.length; t++) {
      const n = subTokens(batch, t);
      if (n === 0) continue;
      this.addon.dpPostQ(
        this.links[t]!.id,
        step.microBatch,
        layer,
        q,
        batch.rows[t]!,
        n,
        this.qWidth,
        this.targets[t]!.outColOff,
        this.timeoutMs,
      );
    }
  }

  /** `nextSlice`: the slice that takes this layer's output (over TCP its replica is sent the OUT). */
  postKv(
    batch: PlaneBatch,
    step: AttentionStep,
    layer: number,
    k: Float32Array,
    v: Float32Array,
    nextSlice: number,
  ): void {
    const replyTo = 1 + replicaOf(step.microBatch, nextSlice, this.replicas);
    for (let t = 0; t < this.links.length; t++) {
      const n = subTokens(batch, t);
      if (n === 0) continue;
      this.addon.dpPostKv(
        this.links[t]!.id,
        step.microBatch,
        layer,
        k,
        v,
        batch.rows[t]!,
        n,
        this.kvWidth,
        this.targets[t]!.kvColOff,
        this.timeoutMs,
        replyTo,
      );
    }
  }

  /** After the front end settled failed steps: forgets OUTs received and never taken (TCP). */
  resync(): void {
    for (const l of this.links) l.resync();
  }

  /** Whether every attention worker the batch's last layer went to has answered. */
  ready(batch: PlaneBatch, microBatch: number): boolean {
    for (let t = 0; t < this.links.length; t++)
      if (subTokens(batch, t) > 0 && !this.links[t]!.ready(microBatch)) return false;
    return true;
  }

  /** Scatters every attention worker's output into `out` (full rows); returns their compute µs. */
  take(batch: PlaneBatch, microBatch: number, out: Float32Array): number {
    let micros = 0;
    for (let t = 0; t < this.links.length; t++) {
      const n = subTokens(batch, t);
      if (n === 0) continue;
      micros += this.addon.dpTake(
        this.links[t]!.id,
        microBatch,
        out,
        batch.rows[t]!,
        n,
        this.qWidth,
        this.targets[t]!.outColOff,
      );
    }
    return micros;
  }

  /** Waits (spin, then futex) until a reply for one of the micro-batches in `mask` is ready. */
  wait(mask: number, timeoutMs: number): void {
    this.addon.dpWait(this.ids, this.ids.length, timeoutMs, mask >>> 0);
  }

  close(): void {
    for (const l of this.links) l.close();
    this.links.length = 0;
  }
}

function subTokens(batch: PlaneBatch, t: number): number {
  return batch.words[B.subTokens + t]!;
}
