import type { SlicedModel } from "../graph/converter.js";
import { replicaOf } from "../util/rotation.js";
import { B, H, type ModelPlane, type PlaneBatch, RW } from "./model-plane.js";
import { PlaneFrame, type PlaneNet } from "./plane-net.js";

/**
 * The model plane over TCP (model workers on other hosts): each process keeps its own copy of the
 * plane, and what the others must see of its writes goes to them as frames (plane-net.ts) that
 * write the same bytes and counters into their copies and ring the same doorbells. Over shared
 * memory none of this runs; the processes share one copy. Which writes go where:
 *
 *   front end → slice 0's replica   a launch: the step (counts, arrays), how the last step ended
 *                               (logitsSeq, failedSeq), sliceDone = 0, stepSeq
 *   replica → next replica      the step again, the micro-batch's context (the tensors later slices
 *                               read, as the converter lists them per slice), how the last step
 *                               ended, sliceDone = k + 1 and stepSeq
 *   replica → front end         the logits and logitsSeq, a failure, a pause acknowledged, and
 *                               (at most every PROGRESS_MS) its counters and sliceDone, which the
 *                               front end's stall bound reads
 *   front end → every replica   pause and resume (epochs, each micro-batch reset), and a snapshot
 *                               of the counters for a replica brought up anew
 *
 * A micro-batch's step thus reaches each replica along one causal chain (launch, then slice after
 * slice), so no replica can see a slice's context before the step it belongs to, whatever the
 * order in which its links deliver. Every frame of a step is guarded by the step number: a copy
 * that already holds a later step (the step was given up and launched anew) drops it. The attention
 * output a slice reads is not context: the attention workers send it to the replica running that
 * slice.
 */

/** How often a replica tells the front end of its progress between logits (the stall bound's input). */
const PROGRESS_MS = 10;

const wordAt = (b: PlaneBatch, word: number) => b.offset + 4 * word;
/** Up to this many attention workers, each one's rows go as a region of its own; beyond, their whole area. */
const ROW_REGIONS = 16;

/** The step of micro-batch b as its copy holds it: counts, tokens, positions, ranges, logit rows, rows per attention worker. */
function stepRegions(f: PlaneFrame, b: PlaneBatch, targets: number): PlaneFrame {
  const w = b.words;
  const n = w[B.nTokens]!;
  const nSeqs = w[B.nSeqs]!;
  f.region(wordAt(b, B.nTokens), 4 * (B.subTokens + targets - B.nTokens));
  f.view(b.tokens, n)
    .view(b.positions, n)
    .view(b.seqStart, nSeqs + 1)
    .view(b.seqIds, nSeqs);
  f.view(b.logitRows, w[B.nLogits]!);
  if (targets <= ROW_REGIONS) for (let t = 0; t < targets; t++) f.view(b.rows[t]!, w[B.subTokens + t]!);
  else {
    const last = b.rows[targets - 1]!;
    f.region(
      b.rows[0]!.byteOffset,
      last.byteOffset - b.rows[0]!.byteOffset + 4 * w[B.subTokens + targets - 1]!,
    );
  }
  return f;
}

/**
 * How the micro-batch's earlier steps ended (logitsSeq, failedSeq), as this copy knows: stored
 * ahead of a step's sliceDone and stepSeq, so a replica that reads the new slice beside the old
 * step number sees that step ended (replica-loop.ts). A step is launched only after the last one
 * ended, and the front end's copy knows how; each frame of the step carries it on to the next
 * replica, whose own copy is stale for steps whose last slice ran elsewhere.
 */
function settled(f: PlaneFrame, b: PlaneBatch): PlaneFrame {
  return f
    .store(wordAt(b, B.logitsSeq), Atomics.load(b.words, B.logitsSeq))
    .store(wordAt(b, B.failedSeq), Atomics.load(b.words, B.failedSeq));
}

/** A replica's link to another replica failed: that replica is lost (the front end replaces it). */
export class PlanePeerLostError extends Error {
  constructor(
    readonly replica: number,
    why: string,
  ) {
    super(`lost the link to model worker ${replica}: ${why}`);
  }
}

/** The front end's side: it writes its copy as over shared memory, then calls these. */
export class FrontPlaneSync {
  private readonly frame = new PlaneFrame();

  constructor(
    private readonly plane: ModelPlane,
    readonly net: PlaneNet,
  ) {}

  /** Links replica r's copy (listening at host:port) and brings it to the counters' present state. */
  link(r: number, host: string, port: number): void {
    this.net.connect(1 + r, host, port);
    const f = this.frame.reset();
    f.region(4 * H.pauseEpoch, 8);
    for (const b of this.plane.batches) f.region(b.offset, 4 * (B.failedSeq + 1));
    this.net.send(1 + r, f);
  }

  /**
   * Micro-batch j's step is written (its new step number `seq`): the replica of its slice 0 gets it.
   * Returns the replica it could not reach, or null.
   */
  launched(j: number, seq: number): { replica: number; why: string } | null {
    const b = this.plane.batches[j]!;
    const f = settled(stepRegions(this.frame.reset(), b, this.plane.shape.targets), b);
    f.store(wordAt(b, B.sliceDone), 0)
      .store(wordAt(b, B.stepSeq), seq)
      .ring(4 * H.doorbell);
    return this.trySend(replicaOf(j, 0, this.plane.shape.replicas), f);
  }

  /** The replicas stop between slices (pauseEpoch = epoch); an unreachable one is being replaced. */
  paused(epoch: number): void {
    this.toAll(
      this.frame
        .reset()
        .store(4 * H.pauseEpoch, epoch)
        .ring(4 * H.doorbell),
    );
  }

  /**
   * Every micro-batch was reset (failedSeq = stepSeq, sliceDone = 0); the replicas go on at
   * runEpoch. Each copy takes the front end's step numbers too: a replica the last launch's chain
   * never reached would otherwise hold an older step, not marked failed, as due.
   */
  resumed(): void {
    for (const b of this.plane.batches) {
      const f = this.frame.reset();
      f.store(wordAt(b, B.stepSeq), Atomics.load(b.words, B.stepSeq));
      f.store(wordAt(b, B.failedSeq), Atomics.load(b.words, B.failedSeq));
      f.store(wordAt(b, B.sliceDone), 0);
      this.toAll(f);
    }
    this.toAll(
      this.frame
        .reset()
        .store(4 * H.runEpoch, Atomics.load(this.plane.header, H.runEpoch))
        .ring(4 * H.doorbell),
    );
  }

  /** Replica r was given up: its lease is void there too, and its link is closed (which voids it as well). */
  revoked(r: number): void {
    const lease = this.plane.replicaWords(r);
    try {
      this.net.send(
        1 + r,
        this.frame
          .reset()
          .store(lease.byteOffset + 4 * RW.lease, 0)
          .ring(4 * H.doorbell),
      );
    } catch {
      // Unreachable: the closed link voids the lease when the replica notices.
    }
    this.net.drop(1 + r);
  }

  /** Sends to replica r; the replica and why when it cannot be reached, else null. */
  private trySend(r: number, f: PlaneFrame): { replica: number; why: string } | null {
    try {
      this.net.send(1 + r, f);
      return null;
    } catch (e) {
      return { replica: r, why: (e as Error).message };
    }
  }

  /** To every replica; an unreachable one is being replaced (its loss is seen by its process or link). */
  private toAll(f: PlaneFrame): void {
    for (let r = 0; r < this.plane.shape.replicas; r++) this.trySend(r, f);
  }

  close(): void {
    this.net.close();
  }
}

/** What a slice's successors read of it: per slice, each context tensor's buffer slot and width. */
export interface ContextTensor {
  readonly tensor: string;
  readonly rows: "tokens" | "logits";
  readonly width: number;
}

function contextTensors(sliced: SlicedModel): ContextTensor[][] {
  return sliced.slices.map((s) =>
    s.context.map((tensor) => {
      const info = sliced.graph.tensors.get(tensor)!;
      return { tensor, rows: info.rows, width: info.width };
    }),
  );
}

/** A model worker's side, called by its replica loop after it wrote its own copy. */
export class ReplicaPlaneSync {
  private readonly frame = new PlaneFrame();
  private readonly lineAt: number;
  private lastProgress = 0;
  private readonly context: readonly (readonly ContextTensor[])[];
  /** The logits tensor and its row width (the vocabulary). */
  private readonly output: { readonly tensor: string; readonly width: number };

  constructor(
    private readonly plane: ModelPlane,
    readonly net: PlaneNet,
    private readonly replica: number,
    sliced: SlicedModel,
    /** Micro-batch j's buffer of a tensor (the executor's tensorOf). */
    private readonly tensorOf: (j: number, tensor: string) => Float32Array,
  ) {
    this.context = contextTensors(sliced);
    const output = sliced.graph.output;
    this.output = { tensor: output, width: sliced.graph.tensors.get(output)!.width };
    this.lineAt = plane.replicaWords(replica).byteOffset;
    // The front end gone (its link closed or failed): the lease is void, so the loop stops.
    net.onLoss(0, this.lineAt + 4 * RW.lease, 0, 4 * H.doorbell);
  }

  /**
   * Slice k of micro-batch j (step `seq`) ran and was not the last: its context goes to the replica
   * that runs slice k + 1, and its progress to the front end now and then.
   */
  sliceDone(j: number, k: number, seq: number): void {
    const b = this.plane.batches[j]!;
    const next = replicaOf(j, k + 1, this.plane.shape.replicas);
    if (next !== this.replica) {
      const nTokens = b.words[B.nTokens]!;
      const nSeqs = b.words[B.nSeqs]!;
      const f = stepRegions(this.frame.reset(), b, this.plane.shape.targets);
      for (const c of this.context[k]!)
        f.view(this.tensorOf(j, c.tensor), (c.rows === "tokens" ? nTokens : nSeqs) * c.width);
      settled(f, b)
        .store(wordAt(b, B.sliceDone), k + 1)
        .store(wordAt(b, B.stepSeq), seq);
      f.guard(wordAt(b, B.stepSeq), seq).ring(4 * H.doorbell);
      try {
        this.net.send(1 + next, f);
      } catch (e) {
        throw new PlanePeerLostError(next, (e as Error).message);
      }
    }
    const now = performance.now();
    if (now - this.lastProgress >= PROGRESS_MS) {
      this.lastProgress = now;
      const f = this.line(this.frame.reset());
      f.store(wordAt(b, B.sliceDone), k + 1).guard(wordAt(b, B.stepSeq), seq);
      this.net.send(0, f);
    }
  }

  /** The last slice ran: the logits to the front end. */
  logits(j: number, seq: number): void {
    const b = this.plane.batches[j]!;
    const { tensor, width } = this.output;
    const f = this.line(this.frame.reset()).view(this.tensorOf(j, tensor), b.words[B.nLogits]! * width);
    f.store(wordAt(b, B.logitsSeq), seq)
      .guard(wordAt(b, B.stepSeq), seq)
      .ring(4 * H.frontDoorbell);
    this.net.send(0, f);
    this.lastProgress = performance.now();
  }

  /** A slice failed: the reason (setError wrote it) and failedSeq to the front end. */
  failed(j: number, seq: number): void {
    const b = this.plane.batches[j]!;
    const f = this.line(this.frame.reset()).view(b.error, Atomics.load(b.words, B.errorBytes));
    f.store(wordAt(b, B.errorBytes), Atomics.load(b.words, B.errorBytes));
    f.store(wordAt(b, B.lostPeer), Atomics.load(b.words, B.lostPeer));
    f.store(wordAt(b, B.failedSeq), seq).ring(4 * H.frontDoorbell);
    this.net.send(0, f);
  }

  /** The replica stopped between slices (its ackEpoch is set): the front end is told. */
  acked(): void {
    this.net.send(0, this.line(this.frame.reset()).ring(4 * H.frontDoorbell));
  }

  /** Peer s's copy listens at host:port (the front end's table). */
  linkPeer(s: number, host: string, port: number): void {
    if (s !== this.replica) this.net.connect(1 + s, host, port);
  }

  /** This replica's line as the front end reads it: the words before its lease (which stays the front end's), and its seconds. */
  private line(f: PlaneFrame): PlaneFrame {
    const seconds = this.plane.replicaSeconds(this.replica);
    return f.view(this.plane.replicaWords(this.replica), RW.lease).view(seconds, seconds.length);
  }

  close(): void {
    this.net.close();
  }
}
