import type { DataPlaneAddon } from "../attention/data-plane-native.js";
import type { ModelWorkerConfigure, ModelWorkerPeers } from "./model-worker-protocol.js";
import { PlaneAttention } from "./plane-attention.js";
import type { ReplicaPlaneSync } from "./plane-sync.js";
import type { ReplicaLoop } from "./replica-loop.js";

/** What starting a replica's loop gives: the loop, a TCP plane's sync (or null) and its copy's port. */
export interface StartedReplica {
  readonly loop: ReplicaLoop;
  readonly sync: ReplicaPlaneSync | null;
  readonly port: number;
  /** Where that copy listens, host:port, for the log. */
  readonly address: string;
}

/**
 * A model worker's state for the one front end it serves: the replica loop (started at the first
 * CONFIGURE, given new attention workers at the next ones), the attention links and, over a TCP
 * plane, the links to the other processes' copies. `end` stops the loop and releases all of it.
 */
export class ReplicaSession {
  private loop: ReplicaLoop | null = null;
  private running: Promise<void> = Promise.resolve();
  private attention: PlaneAttention | null = null;
  private sync: ReplicaPlaneSync | null = null;
  /** The port this replica's copy of a TCP plane listens on (undefined: the plane is shared memory). */
  private planePort: number | undefined;
  private ending = false;
  private resolveFinished!: () => void;
  /** Resolves when the session has ended and released everything. */
  readonly finished = new Promise<void>((resolve) => {
    this.resolveFinished = resolve;
  });

  constructor(
    private readonly dp: DataPlaneAddon,
    private readonly start: (c: ModelWorkerConfigure, attention: PlaneAttention) => StartedReplica,
    private readonly onLoopFailure: (why: string) => void,
    private readonly log: (line: string) => void,
  ) {}

  get ended(): boolean {
    return this.ending;
  }

  /** Applies a CONFIGURE; returns the port a TCP plane's copy listens on (undefined over shared memory). */
  configure(c: ModelWorkerConfigure): number | undefined {
    const next = new PlaneAttention(
      this.dp,
      c.targets,
      c.qWidth,
      c.kvWidth,
      c.spinUs,
      c.timeoutMs,
      c.replica,
      c.shape.replicas,
    );
    if (this.loop) {
      // The attention workers were laid out again: the same loop goes on with the new links.
      this.loop.replaceAttention(next);
      this.attention = next;
      return this.planePort;
    }
    let started: StartedReplica;
    try {
      started = this.start(c, next);
    } catch (e) {
      next.close();
      throw e;
    }
    ({ loop: this.loop, sync: this.sync } = started);
    this.planePort = started.sync ? started.port : undefined;
    this.attention = next;
    const loop = started.loop;
    this.running = loop.run().then(
      () => {
        if (loop.evicted) this.onLoopFailure(`replica ${c.replica}: the front end gave this replica up`);
      },
      (e: Error) => this.onLoopFailure(`replica loop failed: ${e.message}`),
    );
    this.log(
      `replica ${c.replica} of ${c.shape.replicas}${this.sync ? `; its copy of the plane listens on ${started.address}` : ""}`,
    );
    return this.planePort;
  }

  /** A TCP plane: links to the other replicas' copies where the front end says they listen. */
  peers(m: ModelWorkerPeers): void {
    const sync = this.sync;
    if (!sync) throw new Error("peers: this replica's plane is shared memory, not TCP");
    m.peers.forEach((p, s) => {
      if (p) sync.linkPeer(s, p.host, p.port);
    });
  }

  async end(): Promise<void> {
    if (this.ending) return;
    this.ending = true;
    this.loop?.stop();
    await this.running;
    this.attention?.close();
    this.sync?.close();
    this.resolveFinished();
  }
}
