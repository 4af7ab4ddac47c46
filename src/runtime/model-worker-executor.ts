import { randomBytes } from "node:crypto";
import type { RemoteAttentionService, SharedPlaneTarget } from "../attention/remote-service.js";
import { type AttentionDrive, AttentionWorkerLostError } from "../attention/service.js";
import { copySeqs, type SeqArrays } from "../attention/sub-step.js";
import type { SlicedModel } from "../graph/converter.js";
import { newSegmentName, unlinkAtExit, unlinkSegmentName } from "../transport/shm-names.js";
import { type ShmNative, shmNative } from "../transport/shm-native.js";
import { replicaOf } from "../util/rotation.js";
import { planBuffers } from "./buffer-plan.js";
import { sliceOrder } from "./executor.js";
import type { ModelExecutor, ModelPlaneStats, ModelRecovery } from "./model-executor.js";
import { ModelWorkerLostError } from "./model-executor.js";
import { B, H, ModelPlane, type ModelPlaneShape, modelPlaneBytes, RW } from "./model-plane.js";
import {
  MODEL_WORKER_PROTOCOL_VERSION,
  type ModelWorkerConfigure,
  type ModelWorkerPeers,
} from "./model-worker-protocol.js";
import { PlaneNet, type PlaneNetInfo } from "./plane-net.js";
import { FrontPlaneSync } from "./plane-sync.js";
import { createStepTiming, type ModelStep, type StepTiming } from "./step.js";

/** One model worker process as the front end drives it (spawned by the placement). */
export interface ModelWorkerProc {
  readonly pid: number;
  /** The host the front end reaches it at (its copy of a plane over TCP listens there). */
  readonly host: string;
  /**
   * Sends CONFIGURE; resolves on its reply (with the port its copy of a plane over TCP listens on),
   * rejects on an error reply, exit or timeout.
   */
  configure(c: ModelWorkerConfigure, timeoutMs: number): Promise<number | undefined>;
  /** Tells a replica of a plane over TCP where the others' copies listen. */
  peers(p: ModelWorkerPeers, timeoutMs: number): Promise<void>;
  alive(): boolean;
  kill(): void;
  stop(): Promise<void>;
}

export interface ModelWorkerExecutorOptions {
  readonly attention: RemoteAttentionService;
  readonly sliced: SlicedModel;
  readonly maxTokens: number;
  readonly maxSeqs: number;
  readonly maxContext: number;
  readonly microBatches: number;
  readonly replicas: number;
  readonly spawn: (replica: number) => Promise<ModelWorkerProc>;
  readonly spinUs: number;
  /**
   * The model plane: one shared segment (the model workers on this host), or over TCP, each
   * process with a copy of its own (model workers on other hosts; plane-sync.ts).
   */
  readonly plane: "shm" | "tcp";
  /** A replica silent this long on a slice that is due is declared lost (and killed). */
  readonly timeoutMs: number;
  readonly log: (line: string) => void;
}

interface Pending {
  seq: number;
  resolve: ((logits: Float32Array) => void) | null;
  reject: ((e: Error) => void) | null;
}

/** How long the front end sleeps at a time while it waits (it checks the replicas in between). */
const SLEEP_SLICE_MS = 20;
/** How long replicas may take to stop between slices when the front end pauses them. */
const PAUSE_TIMEOUT_MS = 10_000;
const CONFIGURE_TIMEOUT_MS = 60_000;

/**
 * The front end's executor when model workers run the slices (Lamina's (a, b) topology): a
 * launch writes the step into the shared model plane and posts its STEP to the attention workers;
 * model workers then run its slices by the rotation, exchanging each layer with the attention
 * workers directly; the front end only waits for the logits. Waiting is driven by the engine's
 * pipeline (`drive`), natively: spin, then a futex on the plane's doorbell.
 */
export class ModelWorkerExecutor implements ModelExecutor, AttentionDrive, ModelRecovery {
  private readonly pending: Pending[];
  private readonly procs: (ModelWorkerProc | null)[];
  private readonly logitsSlot: number;
  private epoch = -1;
  private lost = "";
  /** Each micro-batch's step arrays in the plane, as `copySeqs` fills them (made once). */
  private readonly seqViews: SeqArrays[];
  /** Steps landed, per micro-batch. */
  private readonly steps: number[];
  private lastProgress = performance.now();
  /** Slices run by every replica so far, when last seen (progress, for the stall bound). */
  private lastSlices = 0;
  private reconfiguring: Promise<void> | null = null;
  private readonly shm: ShmNative;
  /** The last lease handed out (each bring-up of a replica gets a new one). */
  private lastLease = 0;
  /** A plane over TCP: the links to the replicas' copies, and where each listens. */
  private readonly sync: FrontPlaneSync | null;
  private readonly planeToken: string;
  private readonly planePorts: (number | null)[];

  private constructor(
    private readonly o: ModelWorkerExecutorOptions,
    readonly plane: ModelPlane,
    readonly planeName: string,
    logitsSlot: number,
  ) {
    this.shm = shmNative();
    this.planeToken = randomBytes(16).toString("hex");
    this.sync =
      o.plane === "tcp"
        ? new FrontPlaneSync(plane, PlaneNet.open(plane.buffer, this.planeToken, 0, o.timeoutMs))
        : null;
    this.planePorts = Array.from({ length: o.replicas }, () => null);
    this.logitsSlot = logitsSlot;
    this.pending = Array.from({ length: o.microBatches }, () => ({ seq: 0, resolve: null, reject: null }));
    this.procs = Array.from({ length: o.replicas }, () => null);
    this.steps = new Array<number>(o.microBatches).fill(0);
    this.seqViews = plane.batches.map((b) => ({
      nSeqs: 0,
      nTokens: 0,
      seqIds: b.seqIds,
      seqStart: b.seqStart,
      positions: b.positions,
      tokens: b.tokens,
    }));
  }

  /** Creates the plane, spawns the model workers and configures each with the attention workers. */
  static async start(o: ModelWorkerExecutorOptions): Promise<ModelWorkerExecutor> {
    const plan = planBuffers(o.sliced.graph, sliceOrder(o.sliced));
    const targets = sharedTargets(o.attention);
    const shape: ModelPlaneShape = {
      microBatches: o.microBatches,
      replicas: o.replicas,
      targets: targets.length,
      maxTokens: o.maxTokens,
      maxSeqs: o.maxSeqs,
      buffers: plan.buffers.map((b) => ({ rows: b.rows, width: b.width })),
    };
    const name = newSegmentName();
    const buffer = shmNative().create(name, modelPlaneBytes(shape));
    unlinkAtExit(name);
    const plane = new ModelPlane(buffer, shape);
    plane.initialise();
    const ex = new ModelWorkerExecutor(o, plane, name, plan.slotOf.get(o.sliced.graph.output)!);
    try {
      await Promise.all(Array.from({ length: o.replicas }, (_, r) => ex.bringUp(r)));
      await ex.sendPeers();
      ex.epoch = o.attention.layoutEpoch;
    } catch (e) {
      await ex.close();
      throw e;
    }
    return ex;
  }

  get drive(): AttentionDrive {
    return this;
  }

  get recovery(): ModelRecovery {
    return this;
  }

  /** Spawns replica r and configures it with the attention workers serving now. */
  private async bringUp(r: number): Promise<void> {
    const proc = await this.o.spawn(r);
    this.procs[r] = proc;
    Atomics.store(this.plane.replicaWords(r), RW.lease, ++this.lastLease);
    this.planePorts[r] = null;
    const port = await proc.configure(
      this.configureFor(r, sharedTargets(this.o.attention)),
      CONFIGURE_TIMEOUT_MS,
    );
    if (this.sync) {
      this.sync.link(r, proc.host, port!);
      this.planePorts[r] = port!;
    }
    this.o.log(
      `model worker ${r} (pid ${proc.pid}) serving replica ${r} of ${this.o.replicas}${this.sync ? ` (plane over TCP, its copy at ${proc.host}:${port})` : ""}`,
    );
  }

  /** A plane over TCP: every live replica learns where the others' copies listen (they link to each other). */
  private async sendPeers(): Promise<void> {
    if (!this.sync) return;
    const peers: ModelWorkerPeers = {
      v: MODEL_WORKER_PROTOCOL_VERSION,
      type: "peers",
      epoch: this.o.attention.layoutEpoch,
      peers: this.procs.map((p, r) => {
        const port = this.planePorts[r];
        return p?.alive() && port ? { host: p.host, port } : null;
      }),
    };
    await Promise.all(this.procs.map((p) => (p?.alive() ? p.peers(peers, CONFIGURE_TIMEOUT_MS) : undefined)));
  }

  private configureFor(r: number, targets: SharedPlaneTarget[]): ModelWorkerConfigure {
    const g = this.o.attention.geometry;
    return {
      v: MODEL_WORKER_PROTOCOL_VERSION,
      type: "configure",
      epoch: this.o.attention.layoutEpoch,
      plane: this.sync ? { tcp: { token: this.planeToken } } : this.planeName,
      shape: {
        ...this.plane.shape,
        buffers: this.plane.shape.buffers.map((b) => ({ rows: b.rows, width: b.width })),
      },
      replica: r,
      lease: Atomics.load(this.plane.replicaWords(r), RW.lease),
      targets: targets.map((t) => ({ ...t, shape: { ...t.shape } })),
      qWidth: g.numHeads * g.headDim,
      kvWidth: g.numKvHeads * g.headDim,
      maxContext: this.o.maxContext,
      spinUs: this.o.spinUs,
      timeoutMs: this.o.timeoutMs,
    };
  }

  async forward(step: ModelStep): Promise<Float32Array> {
    if (this.lost) throw new ModelWorkerLostError(-1, this.lost);
    // The attention workers were laid out again (a recovery): the replicas map the new segments.
    if (this.o.attention.layoutEpoch !== this.epoch) {
      this.reconfiguring ??= this.quiesce().finally(() => {
        this.reconfiguring = null;
      });
      await this.reconfiguring;
    }
    const j = step.microBatch;
    const b = this.plane.batches[j]!;
    const subs = this.o.attention.postStepForModelWorkers(step);
    copySeqs(this.seqViews[j]!, step);
    for (let r = 0; r < step.nLogits; r++) b.logitRows[r] = step.logitRows[r]!;
    for (let t = 0; t < subs.length; t++) {
      const sub = subs[t]!;
      const rows = b.rows[t]!;
      for (let i = 0; i < sub.nTokens; i++) rows[i] = sub.rows[i]!;
      b.words[B.subTokens + t] = sub.nTokens;
    }
    b.words[B.nTokens] = step.nTokens;
    b.words[B.nSeqs] = step.nSeqs;
    b.words[B.nLogits] = step.nLogits;
    b.words[B.lostPeer] = 0;
    Atomics.store(b.words, B.sliceDone, 0);
    const seq = Atomics.add(b.words, B.stepSeq, 1) + 1;
    const p = this.pending[j]!;
    // The stall bound counts from the first launch after an idle spell, not from the last slice run.
    if (this.blocked() === 0) this.lastProgress = performance.now();
    p.seq = seq;
    const result = new Promise<Float32Array>((resolve, reject) => {
      p.resolve = resolve;
      p.reject = reject;
    });
    this.plane.ring(this.shm);
    const unreachable = this.sync?.launched(j, seq);
    if (unreachable) this.declareLost(unreachable.replica, unreachable.why);
    return result;
  }

  blocked(): number {
    let n = 0;
    for (const p of this.pending) if (p.resolve) n++;
    return n;
  }

  /** Waits until some launched micro-batch ends (its logits are in, or it failed) and settles it. */
  pump(): void {
    const h = this.plane.header;
    for (;;) {
      // Read before looking: a ring after this makes the sleep below return at once.
      const seen = Atomics.load(h, H.frontDoorbell);
      if (this.settle() > 0) return;
      if (this.checkHealth()) return;
      // No spin: a step takes a whole forward pass, and a spinning front end would take a core
      // from the model workers; the futex wake costs a few µs per step.
      this.plane.sleep(this.shm, H.frontDoorbell, seen, SLEEP_SLICE_MS);
    }
  }

  /** Settles every micro-batch whose step ended; returns how many. */
  private settle(): number {
    let n = 0;
    for (let j = 0; j < this.pending.length; j++) {
      const p = this.pending[j]!;
      if (!p.resolve) continue;
      const b = this.plane.batches[j]!;
      if (Atomics.load(b.words, B.logitsSeq) === p.seq) {
        const resolve = p.resolve;
        p.resolve = null;
        p.reject = null;
        this.steps[j]!++;
        resolve(b.buffers[this.logitsSlot]!);
        n++;
      } else if (Atomics.load(b.words, B.failedSeq) === p.seq) {
        const why = this.plane.errorOf(j);
        // Over a TCP plane a replica that lost its link to another reports it: that one is lost
        // (unreachable, if not dead yet), and every step in flight is re-run once it is replaced.
        const peer = Atomics.load(b.words, B.lostPeer) - 1;
        if (peer >= 0 && peer < this.o.replicas) {
          this.procs[peer]?.kill();
          this.declareLost(peer, why);
          return n + 1;
        }
        // An attention worker that failed under a replica is the attention service's loss.
        const attention = this.o.attention.probeDataPlane();
        this.failOne(p, attention ? new AttentionWorkerLostError("data plane", attention) : new Error(why));
        n++;
      }
    }
    return n;
  }

  private failOne(p: Pending, e: Error): void {
    const reject = p.reject;
    p.resolve = null;
    p.reject = null;
    reject?.(e);
  }

  /** Fails everything in flight; true if something was failed. */
  private failAll(e: Error): boolean {
    let n = 0;
    for (const p of this.pending)
      if (p.reject) {
        this.failOne(p, e);
        n++;
      }
    return n > 0;
  }

  /**
   * A dead replica, a lost attention worker, or a replica silent past the timeout on a slice
   * that is due (it is killed: a stopped process would hold the rotation for ever) fails every
   * micro-batch in flight; recovery then replaces what was lost.
   */
  private checkHealth(): boolean {
    const dead = this.deadReplica();
    if (dead >= 0) return this.declareLost(dead, `process ${this.procs[dead]!.pid} exited`);
    const attention = this.o.attention.probeDataPlane();
    if (attention || this.o.attention.needsRecovery())
      return this.failAll(
        new AttentionWorkerLostError("data plane", attention || "an attention worker was lost"),
      );
    let slices = 0;
    for (let r = 0; r < this.o.replicas; r++) slices += Atomics.load(this.plane.replicaWords(r), RW.slices);
    if (slices !== this.lastSlices) {
      this.lastSlices = slices;
      this.lastProgress = performance.now();
    }
    if (performance.now() - this.lastProgress > this.o.timeoutMs) {
      const r = this.dueReplica();
      if (r >= 0) {
        this.procs[r]?.kill();
        return this.declareLost(r, `no progress within ${this.o.timeoutMs} ms`);
      }
      this.lastProgress = performance.now();
    }
    return false;
  }

  /** The replica the oldest unfinished micro-batch waits for. */
  private dueReplica(): number {
    for (let j = 0; j < this.pending.length; j++) {
      if (!this.pending[j]!.resolve) continue;
      const done = Atomics.load(this.plane.batches[j]!.words, B.sliceDone);
      return replicaOf(j, done, this.o.replicas);
    }
    return -1;
  }

  private declareLost(r: number, why: string): boolean {
    if (!this.lost) this.o.log(`model worker ${r} lost: ${why}`);
    this.revokeLease(r);
    this.lost ||= `model worker ${r}: ${why}`;
    this.failAll(new ModelWorkerLostError(r, why));
    return true;
  }

  /** Whatever replica r's process does next (a stalled one may wake), it no longer runs slices here. */
  private revokeLease(r: number): void {
    Atomics.store(this.plane.replicaWords(r), RW.lease, 0);
    this.sync?.revoked(r);
  }

  needsRecovery(): boolean {
    if (this.lost) return true;
    const dead = this.deadReplica();
    if (dead >= 0) this.lost = `model worker ${dead}: process ${this.procs[dead]!.pid} exited`;
    return dead >= 0;
  }

  /** A replica whose process has exited, or -1. */
  private deadReplica(): number {
    return this.procs.findIndex((p) => p !== null && !p.alive());
  }

  /** Replaces lost replicas and makes every micro-batch launchable again (nothing is in flight). */
  async recover(): Promise<void> {
    await this.quiesce();
    this.lost = "";
  }

  /**
   * Pauses the live replicas between slices, respawns dead ones, re-maps the attention workers'
   * segments if they moved, lets the attention workers drain what was posted, and resets every
   * micro-batch to idle before the replicas go on.
   */
  private async quiesce(): Promise<void> {
    const h = this.plane.header;
    const epoch = Atomics.load(h, H.runEpoch) + 1;
    Atomics.store(h, H.pauseEpoch, epoch);
    this.plane.ring(this.shm);
    this.sync?.paused(epoch);
    await this.waitForAcks(epoch);
    const targets = sharedTargets(this.o.attention);
    const moved = this.o.attention.layoutEpoch !== this.epoch;
    await Promise.all(
      this.procs.map(async (proc, r) => {
        if (!proc?.alive()) {
          this.revokeLease(r);
          await proc?.stop();
          this.o.log(`model worker ${r}: starting a replacement`);
          await this.bringUp(r);
        } else if (moved) await proc.configure(this.configureFor(r, targets), CONFIGURE_TIMEOUT_MS);
      }),
    );
    await this.sendPeers();
    this.epoch = this.o.attention.layoutEpoch;
    for (let j = 0; j < this.plane.batches.length; j++) {
      if (!moved && !this.o.attention.settleForModelWorkers(j))
        throw new Error(`attention workers did not settle micro-batch ${j}`);
      const w = this.plane.batches[j]!.words;
      const seq = Atomics.load(w, B.stepSeq);
      Atomics.store(w, B.failedSeq, seq);
      Atomics.store(w, B.sliceDone, 0);
    }
    Atomics.store(h, H.runEpoch, epoch);
    this.plane.ring(this.shm);
    this.sync?.resumed();
    this.lastProgress = performance.now();
  }

  /** Waits until every live replica says it stopped taking slices; a silent one is killed. */
  private async waitForAcks(epoch: number): Promise<void> {
    const t0 = performance.now();
    for (;;) {
      let waiting = -1;
      for (let r = 0; r < this.procs.length; r++) {
        const proc = this.procs[r];
        if (proc?.alive() && Atomics.load(this.plane.replicaWords(r), RW.ackEpoch) !== epoch) waiting = r;
      }
      if (waiting < 0) return;
      if (performance.now() - t0 > PAUSE_TIMEOUT_MS) {
        this.o.log(`model worker ${waiting} did not pause within ${PAUSE_TIMEOUT_MS} ms: replacing it`);
        this.procs[waiting]!.kill();
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  timing(): StepTiming {
    const t = createStepTiming();
    for (let r = 0; r < this.o.replicas; r++) {
      const s = this.plane.replicaSeconds(r);
      t.model += s[0]!;
      t.attention += s[1]!;
    }
    // As the in-process executor counts them: steps of the busiest micro-batch.
    t.steps = Math.max(...this.steps);
    return t;
  }

  /** Attention compute the attention workers reported for the layers taken, in seconds. */
  reportedAttentionSeconds(): number {
    let s = 0;
    for (let r = 0; r < this.o.replicas; r++) s += this.plane.replicaSeconds(r)[2]!;
    return s;
  }

  /** A plane over TCP: the front end's link counters (frames and bytes each way, refusals); else null. */
  planeNetInfo(): PlaneNetInfo | null {
    return this.sync?.net.info() ?? null;
  }

  planeStats(): ModelPlaneStats | null {
    const i = this.planeNetInfo();
    if (!i) return null;
    const { framesIn, framesOut, bytesIn, bytesOut, stale, malformed } = i;
    return { framesIn, framesOut, bytesIn, bytesOut, stale, malformed };
  }

  /** Model worker pids (tests kill them; benchmarks pin them). */
  pids(): number[] {
    return this.procs.map((p) => p?.pid ?? 0);
  }

  async close(): Promise<void> {
    this.failAll(new Error("engine shutting down"));
    await Promise.all(this.procs.map((p) => p?.stop().catch(() => undefined)));
    this.sync?.close();
    unlinkSegmentName(this.planeName);
  }
}

function sharedTargets(attention: RemoteAttentionService): SharedPlaneTarget[] {
  const shared = attention.sharedPlane();
  if ("reason" in shared)
    throw new Error(`model workers cannot reach the attention workers: ${shared.reason}`);
  return shared.targets;
}
