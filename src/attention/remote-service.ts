import type { Channel } from "../transport/channel.js";
import { parseControl } from "../transport/control.js";
import { RequestTimeoutError } from "../transport/errors.js";
import { DEFAULT_LIMITS } from "../transport/limits.js";
import type { Message, ReceivedMessage } from "../transport/message.js";
import { RpcClient } from "../transport/rpc.js";
import { BlockMirror } from "./block-mirror.js";
import { DataPlaneLink, type DataPlaneShape, dataPlaneShape } from "./data-plane-link.js";
import { DATA_PLANE_LAYOUT, type DataPlaneAddon, dataPlaneAddon } from "./data-plane-native.js";
import { DataPlaneWaits } from "./data-plane-waits.js";
import type { KvGeometry } from "./kv-attention.js";
import {
  attachPrefix,
  type FoundPrefix,
  longestCommonPrefix,
  longestPrefix,
  type PrefixPools,
  retainPrefix,
} from "./prefix-pools.js";
import {
  ATTENTION_PROTOCOL_VERSION,
  type ConfigureReply,
  type ConfigureRequest,
  configureReplySchema,
  MsgType,
  type WorkerStats,
  workerStatsSchema,
} from "./protocol.js";
import {
  type AttentionDrive,
  type AttentionRecovery,
  type AttentionService,
  type AttentionServiceStats,
  type AttentionStep,
  AttentionWorkerLostError,
  type KvUsage,
  type PrefixCaching,
} from "./service.js";
import { gatherRows, SubStep, scatterRows } from "./sub-step.js";

/** How to (re)open a connection to one attention worker. */
export interface WorkerEndpoint {
  readonly name: string;
  connect(): Promise<Channel>;
  /** Stops what `connect` started (a spawned process); absent for workers this side did not start. */
  close?(): Promise<void>;
}

export type Partition = "head" | "request";

/** One worker as the model side sees it: its connection, share of heads, and a block mirror. */
interface Link {
  readonly endpoint: WorkerEndpoint;
  channel: Channel | null;
  rpc: RpcClient | null;
  alive: boolean;
  /** Block accounting mirrored exactly from what we asked the worker to do. */
  mirror: BlockMirror | null;
  /** Head partitioning: KV heads [kvLo, kvHi) and the query heads of those groups. */
  kvLo: number;
  kvHi: number;
  /** Per micro-batch: the rows of its step this worker serves, and send buffers. */
  batches: LinkBatch[];
  pid: number;
  kernels: string;
  lostReason: string;
  /** The native data plane of this connection (same-host workers that accepted it), else null. */
  dp: DataPlaneLink | null;
  /** First column of this worker's heads in a full q/out row. */
  outColOff: number;
  subOf(microBatch: number): SubStep;
}

/** A live link's mirrored pools, as prefix caching takes them. */
function poolsOf(l: Link): PrefixPools {
  return { global: l.mirror!, window: l.mirror!.window };
}

/** One micro-batch as one worker sees it. */
interface LinkBatch {
  /** The sequences of the step this worker serves (all of them under head partitioning). */
  readonly sub: SubStep;
  readonly q: Float32Array;
  readonly k: Float32Array;
  readonly v: Float32Array;
  /**
   * The integer headers of STEP, Q and KV, one buffer each: a channel may hold a message unsent
   * (full socket or ring) until after the next one is built, so no two messages share a header.
   */
  readonly stepInts: Int32Array;
  readonly qInts: Int32Array;
  readonly kvInts: Int32Array;
}

/** A step awaiting its workers' OUT replies. */
interface PendingLayer {
  remaining: number;
  resolve: () => void;
  reject: (e: Error) => void;
  failed: boolean;
}

/**
 * Attention on remote attention workers (Lamina): per layer the model side sends q as soon as it
 * exists (the worker starts on cached tokens), then k and v, and awaits the outputs. KV is
 * partitioned across workers by KV head (balanced; default) or by request (balanced by KV load).
 * Block accounting is mirrored here so the scheduler's admission stays synchronous.
 */
/**
 * Most cached blocks one ATTACH gives a sequence: its ints (sequence id, count, window start, the
 * blocks, and the window blocks a step after them reads) stay in a frame's limit.
 */
export function maxAttachBlocks(g: KvGeometry): number {
  const windowPart = g.slidingWindow === null ? 0 : Math.ceil(g.slidingWindow / g.blockSize) + 1;
  return DEFAULT_LIMITS.maxInts - 3 - windowPart;
}

export class RemoteAttentionService implements AttentionService, AttentionRecovery {
  readonly blockSize: number;
  private readonly links: Link[];
  private readonly owner = new Map<number, Link>();
  /** Per micro-batch: the layer awaiting its workers' outputs. */
  private readonly pending: PendingLayer[];
  /** Micro-seconds of attention compute reported by the workers (for the step breakdown). */
  attentionMicros = 0;
  /** Polling time of connections since replaced (a link's count starts again with each connection). */
  private retiredPollSeconds = 0;
  /** A worker holding a share of the KV was lost since the last layout: lay out again before the next step. */
  private layoutBroken = false;
  /** Workers lost while holding KV, ever: a layout is whole only if none was lost while it was made. */
  private losses = 0;
  private lastAttempt = 0;
  /** How often a down worker is tried again between steps (a refused connect costs little; a dead host more). */
  retryMs = 1000;
  /** How long recovery keeps trying to find attention capacity before the requests fail. */
  recoverTimeoutMs = 30_000;
  /**
   * Liveness: a worker that has not answered a layer within this time is declared lost (a stopped
   * or wedged process answers nothing, and neither a closed socket nor a dead pid says so).
   */
  replyTimeoutMs = 5_000;
  private readonly qWidthTotal: number;
  private readonly kvWidthTotal: number;
  /** The data plane's functions when same-host workers should get one (else null: messages only). */
  private readonly dpAddon: DataPlaneAddon | null;
  private readonly waits: DataPlaneWaits<Link> | null;
  /** Every active worker serves the exchange on the data plane (else all of it goes over messages). */
  private dpMode = false;
  private shareDataPlane = false;
  /** Counts layouts made (start-up and every recovery): model workers re-map the plane when it moves. */
  layoutEpoch = 0;
  /** The serving workers (alive, laid out), refreshed when that changes. */
  private activeLinks: readonly Link[] = [];
  /** Per micro-batch: the workers its current layer went to (reused, so a layer allocates no array). */
  private readonly sending: Link[][];

  private constructor(
    endpoints: readonly WorkerEndpoint[],
    readonly partition: Partition,
    readonly geometry: KvGeometry,
    private readonly kvMemory: number | null,
    private readonly microBatches: number,
    private readonly log: (line: string) => void,
    dataPlane: DataPlaneAddon | null,
    private readonly spinMicros: number,
  ) {
    this.blockSize = geometry.blockSize;
    this.prefix = {
      attach: (seqId, keys) => this.attachPrefix(seqId, keys),
      publish: (seqId, index, key) => this.publishPrefix(seqId, index, key),
      // Head partitioning: every worker holds a slice of the same blocks.
      cachedBlocks: () =>
        this.partition === "head"
          ? (this.active()[0]?.mirror?.cachedBlocks ?? 0)
          : this.active().reduce((n, l) => n + l.mirror!.cachedBlocks, 0),
    };
    this.qWidthTotal = geometry.numHeads * geometry.headDim;
    this.kvWidthTotal = geometry.numKvHeads * geometry.headDim;
    this.links = endpoints.map((endpoint) => {
      const l: Link = {
        dp: null,
        outColOff: 0,
        subOf: (mb: number): SubStep => l.batches[mb]!.sub,
        endpoint,
        channel: null,
        rpc: null,
        alive: false,
        mirror: null,
        kvLo: 0,
        kvHi: 0,
        batches: [],
        pid: 0,
        kernels: "",
        lostReason: "",
      };
      return l;
    });
    this.sending = Array.from({ length: microBatches }, () => []);
    this.pending = Array.from({ length: microBatches }, () => ({
      remaining: 0,
      resolve: () => {},
      reject: () => {},
      failed: false,
    }));
    this.dpAddon = dataPlane;
    this.waits = dataPlane
      ? new DataPlaneWaits<Link>(dataPlane, microBatches, endpoints.length, this.qWidthTotal, {
          timeoutMs: () => this.replyTimeoutMs,
          onReply: (micros) => {
            this.attentionMicros += micros;
          },
          onLost: (l, reason) => this.declareLost(l, reason),
        })
      : null;
  }

  /** Connects to every worker and configures its share. Fails clearly if a worker cannot serve. */
  static async connect(
    endpoints: readonly WorkerEndpoint[],
    options: {
      partition: Partition;
      geometry: KvGeometry;
      kvMemory: number | null;
      /** Micro-batches the engine keeps in flight (each gets its own buffers on both sides). */
      microBatches: number;
      /** Liveness bound for a layer's reply (default 5 s). */
      replyTimeoutMs?: number;
      /**
       * Move the per-layer exchange with same-host workers onto the native data plane (default
       * true); where the kernels or a worker cannot, the exchange stays on messages and the log
       * says why.
       */
      dataPlane?: boolean;
      /** Spin budget of the data plane's waits before they sleep (µs, default 200). */
      spinMicros?: number;
      /**
       * Model workers post the layers on the same segments (see `sharedPlane`): the segment
       * names then stay until the service closes, so they can map them too.
       */
      shareDataPlane?: boolean;
      log?: (line: string) => void;
    },
  ): Promise<RemoteAttentionService> {
    if (endpoints.length === 0) throw new Error("remote attention needs at least one attention worker");
    const g = options.geometry;
    if (options.partition === "head" && g.numKvHeads % endpoints.length !== 0) {
      throw new Error(
        `head partitioning needs the KV head count (${g.numKvHeads}) to divide by the attention worker count (${endpoints.length}); use --partition request or ${divisors(g.numKvHeads).join("/")} workers`,
      );
    }
    const log = options.log ?? (() => {});
    let dp: DataPlaneAddon | null = null;
    if (options.dataPlane ?? true) {
      const found = dataPlaneAddon();
      if (typeof found === "string")
        log(`native data plane unavailable, per-layer exchange over messages: ${found}`);
      else dp = found;
    }
    const svc = new RemoteAttentionService(
      endpoints,
      options.partition,
      g,
      options.kvMemory,
      options.microBatches,
      log,
      dp,
      options.spinMicros ?? DEFAULT_SPIN_MICROS,
    );
    if (options.replyTimeoutMs !== undefined) svc.replyTimeoutMs = options.replyTimeoutMs;
    svc.shareDataPlane = options.shareDataPlane ?? false;
    await svc.relayout(svc.links);
    return svc;
  }

  get description(): string {
    const alive = this.links.filter((l) => l.alive).length;
    return `${alive} attention worker${alive === 1 ? "" : "s"} (${this.partition}-partitioned)`;
  }

  /** Workers currently serving. */
  get aliveWorkers(): number {
    return this.links.filter((l) => l.alive).length;
  }

  /** While the exchange is on the data plane, the pipeline drives it (see AttentionDrive). */
  get drive(): AttentionDrive | null {
    return this.dpMode ? this.waits : null;
  }

  /** This service can lose workers and recover from it. */
  get recovery(): AttentionRecovery {
    return this;
  }

  stats(): AttentionServiceStats {
    let pollSeconds = this.retiredPollSeconds;
    for (const l of this.links)
      pollSeconds += (l.channel?.pollStats?.().spinSeconds ?? 0) + (l.dp?.spinSeconds() ?? 0);
    return { reportedMicros: this.attentionMicros, liveWorkers: this.aliveWorkers, pollSeconds };
  }

  /**
   * Gives each live worker its share and a fresh cache (CONFIGURE replaces any earlier one).
   * Under head partitioning every worker is re-laid out (all KV must then be rebuilt); under
   * request partitioning only `fresh` workers are configured and the others keep their KV.
   */
  async relayout(fresh: Link[] = this.links): Promise<void> {
    this.lastAttempt = performance.now();
    const lossesBefore = this.losses;
    for (const l of fresh) if (!l.alive) await this.open(l);
    let live = this.links.filter((l) => l.alive);
    if (live.length === 0)
      throw new Error(
        `no attention worker is reachable (${this.links.map((l) => `${l.endpoint.name}: ${l.lostReason || "down"}`).join("; ")})`,
      );
    const g = this.geometry;
    if (this.partition === "head") {
      // The largest worker count that divides the KV heads; spare workers wait.
      let n = live.length;
      while (g.numKvHeads % n !== 0) n--;
      live = live.slice(0, n);
      this.owner.clear();
      for (const l of this.links) l.mirror = null;
      this.refreshActive();
    }
    const targets = this.partition === "head" ? live : live.filter((l) => fresh.includes(l) || !l.mirror);
    const perKv = this.partition === "head" ? g.numKvHeads / live.length : g.numKvHeads;
    await Promise.all(
      targets.map((l, i) => this.configure(l, this.partition === "head" ? i * perKv : 0, perKv)),
    );
    // Only a layout that no loss interrupted covers every head (or owner) again.
    if (this.losses === lossesBefore) this.layoutBroken = false;
    this.refreshActive();
    this.layoutEpoch++;
  }

  private async configure(l: Link, kvLo: number, perKv: number): Promise<void> {
    const g = this.geometry;
    const group = g.numHeads / g.numKvHeads;
    const qw = perKv * group * g.headDim;
    const kw = perKv * g.headDim;
    const req: ConfigureRequest = {
      version: ATTENTION_PROTOCOL_VERSION,
      numLayers: g.numLayers,
      numHeads: perKv * group,
      numKvHeads: perKv,
      headDim: g.headDim,
      blockSize: g.blockSize,
      kvDtype: g.kvDtype,
      maxContext: g.maxContext,
      maxTokens: g.maxTokens,
      maxSeqs: g.maxSeqs,
      slidingWindow: g.slidingWindow,
      ...(g.slidingLayers ? { slidingLayers: [...g.slidingLayers] } : {}),
      ...(g.scale !== undefined ? { scale: g.scale } : {}),
      ...(g.softcap !== undefined ? { softcap: g.softcap } : {}),
      ...(g.sinks ? { sinks: headSinks(g.sinks, g.numHeads, kvLo * group, perKv * group) } : {}),
      kvMemory: this.kvMemory,
      maxTags: this.microBatches,
      dataPlane: null,
    };
    // The data plane: a segment for a same-host worker, a socket the worker opens for one elsewhere.
    const shape = dataPlaneShape(req);
    const segment = this.dpAddon && l.channel?.sameHost ? this.newSegment(l, shape) : null;
    const tcpHost = this.dpAddon && !l.channel?.sameHost ? l.channel?.addresses?.remote : undefined;
    if (segment)
      req.dataPlane = {
        segment: segment.name,
        layout: DATA_PLANE_LAYOUT,
        ...(this.shareDataPlane ? { shared: true } : {}),
      };
    else if (tcpHost) req.dataPlane = { tcp: true, layout: DATA_PLANE_LAYOUT };
    let reply: ConfigureReply;
    try {
      reply = await this.configureRpc(l, req);
    } catch (e) {
      segment?.close();
      throw e;
    }
    // The worker has mapped the segment (or refused it): the name is not needed any more, unless
    // model workers are still to map it.
    if (!this.shareDataPlane) segment?.unlinkName();
    let dp: DataPlaneLink | null = reply.dataPlane ? segment : null;
    if (reply.dataPlane && reply.dataPlaneTcp && tcpHost) {
      try {
        const { port, token } = reply.dataPlaneTcp;
        dp = DataPlaneLink.connectTcp(
          this.dpAddon!,
          tcpHost,
          port,
          token,
          shape,
          this.spinMicros,
          TCP_CONNECT_MS,
        );
      } catch (e) {
        this.log(`attention worker ${l.endpoint.name}: data-plane socket failed (${(e as Error).message})`);
        // The worker waits on that socket: configure it again for the exchange over messages.
        reply = await this.configureRpc(l, { ...req, dataPlane: null });
      }
    }
    if (!dp) segment?.close();
    if (req.dataPlane && !reply.dataPlane)
      this.log(
        `attention worker ${l.endpoint.name}: no data plane (${reply.dataPlaneNote}); exchange over messages`,
      );
    l.dp?.close();
    l.dp = dp;
    l.outColOff = kvLo * group * g.headDim;
    l.kvLo = kvLo;
    l.kvHi = kvLo + perKv;
    l.mirror = new BlockMirror(g, reply.numBlocks, reply.windowBlocks);
    this.refreshActive();
    l.pid = reply.pid;
    l.kernels = reply.kernels;
    l.batches = Array.from({ length: this.microBatches }, () => ({
      sub: new SubStep(g.maxTokens, g.maxSeqs),
      q: new Float32Array(g.maxTokens * qw),
      k: new Float32Array(g.maxTokens * kw),
      v: new Float32Array(g.maxTokens * kw),
      stepInts: new Int32Array(3),
      qInts: new Int32Array(2),
      kvInts: new Int32Array(2),
    }));
    this.log(
      `attention worker ${l.endpoint.name} (pid ${reply.pid}): kv heads ${kvLo}..${kvLo + perKv - 1}, ${reply.numBlocks} blocks, ${reply.kernels}, ${l.dp ? "native data plane" : "exchange over messages"}`,
    );
  }

  /** A data-plane segment for a same-host worker's share, or null if it cannot be made. */
  private newSegment(l: Link, shape: DataPlaneShape): DataPlaneLink | null {
    try {
      return DataPlaneLink.create(this.dpAddon!, shape, this.spinMicros);
    } catch (e) {
      this.log(`attention worker ${l.endpoint.name}: data plane not created (${(e as Error).message})`);
      return null;
    }
  }

  /**
   * CONFIGURE and its reply. A stopped or wedged worker must not hold recovery: CONFIGURE gets a
   * bound too (longer than a layer's, as the worker allocates its cache), and silence past it is a loss.
   */
  private configureRpc(l: Link, req: ConfigureRequest): Promise<ConfigureReply> {
    const bound = CONFIGURE_REPLIES_PER_LAYER * this.replyTimeoutMs;
    return l
      .rpc!.request(
        { type: MsgType.CONFIGURE, control: req },
        (m) => parseControl(m, configureReplySchema, "CONFIGURE reply"),
        bound,
      )
      .catch((e: Error) => {
        if (e instanceof RequestTimeoutError) this.declareLost(l, `no CONFIGURE reply within ${bound} ms`);
        throw e;
      });
  }

  /**
   * After any change to a worker's liveness, layout or data plane: the serving workers (a new
   * array, so a loop over the old one is undisturbed) and whether the exchange is on the data
   * plane (only while every one of them has it).
   */
  private refreshActive(): void {
    const active = this.links.filter((l) => l.alive && l.mirror);
    this.activeLinks = active;
    this.dpMode = this.waits !== null && active.length > 0 && active.every((l) => l.dp !== null);
  }

  /** Whether some worker is down. */
  get degraded(): boolean {
    return this.links.some((l) => !l.alive || !l.mirror);
  }

  /**
   * Whether the engine must call `recover` before its next step: a worker that held KV was lost
   * (between steps too, not only during one: the layout no longer covers every head or owner),
   * or a down worker is due for another try so that it can rejoin.
   */
  needsRecovery(): boolean {
    if (this.layoutBroken) return true;
    return this.degraded && performance.now() - this.lastAttempt >= this.retryMs;
  }

  /**
   * After a loss: brings lost workers back where possible (a spawned worker is restarted, an
   * addressed one reconnected) and lays the KV out again. Returns the sequences whose KV is gone
   * and must be rebuilt from their tokens (all of them under head partitioning).
   *
   * A fault during recovery itself (a replacement that dies in its handshake, the survivor lost
   * meanwhile) fails only that attempt: the next one starts from whatever is alive then, with
   * backoff, until `recoverTimeoutMs` passes without capacity; then it rejects with the reasons.
   */
  async recover(seqIds: Iterable<number>): Promise<number[]> {
    const ids = [...seqIds];
    const deadline = performance.now() + this.recoverTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.recoverOnce(ids);
      } catch (e) {
        const reason = (e as Error).message;
        if (performance.now() >= deadline)
          throw new Error(`no attention capacity after ${attempt} recovery attempt(s): ${reason}`);
        this.log(`recovery attempt ${attempt} failed (${reason}); retrying`);
        await new Promise((r) => setTimeout(r, Math.min(1000, 25 * 2 ** attempt)));
      }
    }
  }

  /** One recovery attempt from the current state; throws if a worker fails during it. */
  private async recoverOnce(ids: readonly number[]): Promise<number[]> {
    const lost = this.links.filter((l) => !l.alive || !l.mirror);
    const down = lost.filter((l) => !l.alive);
    this.lastAttempt = performance.now();
    for (const l of down) await this.open(l);
    // Nothing lost its KV and nobody came back: keep the current layout (and everyone's KV).
    if (!this.layoutBroken && !down.some((l) => l.alive)) return [];
    const affected =
      this.partition === "head"
        ? [...ids]
        : ids.filter((s) => lost.includes(this.owner.get(s) as Link) || !this.owner.has(s));
    for (const s of affected) this.owner.delete(s);
    await this.relayout(lost);
    return affected;
  }

  /** Pids of the worker processes (spawned or remote), by worker. */
  workerPids(): { worker: string; pid: number; alive: boolean }[] {
    return this.links.map((l) => ({ worker: l.endpoint.name, pid: l.pid, alive: l.alive }));
  }

  private async open(l: Link): Promise<void> {
    this.retiredPollSeconds += l.channel?.pollStats?.().spinSeconds ?? 0;
    try {
      const channel = await l.endpoint.connect();
      l.channel = channel;
      l.rpc = new RpcClient(channel, { timeoutMs: 60_000, onUnsolicited: () => {} });
      l.alive = true;
      this.refreshActive();
      channel.onClose((info) => this.onLost(l, info.reason));
    } catch (e) {
      l.alive = false;
      l.lostReason = (e as Error).message;
      this.log(`attention worker ${l.endpoint.name} unreachable: ${l.lostReason}`);
    }
  }

  private onLost(l: Link, reason: string): void {
    if (!l.alive) return;
    l.alive = false;
    l.lostReason = reason;
    if (l.mirror) {
      this.layoutBroken = true;
      this.losses++;
    }
    l.mirror = null;
    l.dp?.close();
    l.dp = null;
    this.refreshActive();
    this.log(`attention worker ${l.endpoint.name} lost: ${reason}`);
    this.waits?.failAll(new AttentionWorkerLostError(l.endpoint.name, reason));
    for (const p of this.pending) {
      if (p.remaining > 0 && !p.failed) {
        p.failed = true;
        p.reject(new AttentionWorkerLostError(l.endpoint.name, reason));
      }
    }
  }

  /** The workers serving now (kept by refreshActive: no array is made per layer). */
  private active(): readonly Link[] {
    return this.activeLinks;
  }

  private linksFor(seqId: number): readonly Link[] {
    if (this.partition === "head") return this.active();
    const o = this.owner.get(seqId);
    // A lost owner holds nothing any more (its KV is rebuilt elsewhere by recovery).
    return o?.alive && o.mirror ? [o] : [];
  }

  /** Request partitioning: a new sequence goes to the worker with the most free blocks. */
  private pickOwner(): Link | null {
    let best: Link | null = null;
    for (const l of this.active()) if (!best || l.mirror!.freeBlocks > best.mirror!.freeBlocks) best = l;
    return best;
  }

  canReserve(seqId: number, numTokens: number): boolean {
    if (this.partition === "request" && !this.owner.has(seqId)) {
      const l = this.pickOwner();
      return !!l && l.mirror!.canReserve(seqId, numTokens);
    }
    const links = this.linksFor(seqId);
    return links.length > 0 && links.every((l) => l.mirror!.canReserve(seqId, numTokens));
  }

  reserve(seqId: number, numTokens: number, ahead = 0): boolean {
    if (!this.canReserve(seqId, numTokens + ahead)) return false;
    if (this.partition === "request" && !this.owner.has(seqId)) this.owner.set(seqId, this.pickOwner()!);
    for (const l of this.linksFor(seqId)) {
      if (l.mirror!.reserveAheadMoves(seqId, numTokens, ahead))
        this.post(l, { type: MsgType.RESERVE, ints: [seqId, numTokens, ahead] });
    }
    return true;
  }

  /**
   * Prefix caching: each worker's mirror keys its retained blocks, and the worker is told the same
   * operations (ATTACH, RETAIN) in the same order, so its accounting stays the mirror's. A new
   * sequence under request partitioning goes to the worker holding the longest run of its prefix.
   */
  readonly prefix: PrefixCaching;
  /** Speculative drafts' KV may be overwritten (see AttentionService.rewritesKv). */
  readonly rewritesKv = true;

  private attachPrefix(seqId: number, allKeys: readonly string[]): number {
    // One ATTACH carries the blocks as header ints, which a frame limits.
    const max = maxAttachBlocks(this.geometry);
    if (max < 1) return 0; // a window so long its blocks alone fill a frame: no ATTACH could carry them
    const keys = allKeys.length > max ? allKeys.slice(0, max) : allKeys;
    if (this.partition === "request" && this.owner.has(seqId)) return 0;
    let links = this.active();
    let found: FoundPrefix[] | null;
    if (this.partition === "request") {
      // The worker holding the longest usable prefix (the most free blocks among equals); none holds
      // any: no owner yet.
      const each = links.map((l) => longestPrefix(this.geometry, poolsOf(l), keys));
      const len = (i: number) => each[i]?.global.length ?? 0;
      let best = -1;
      for (let i = 0; i < links.length; i++) {
        const longer = best < 0 ? len(i) > 0 : len(i) > len(best);
        const tie = best >= 0 && len(i) === len(best);
        if (longer || (tie && links[i]!.mirror!.freeBlocks > links[best]!.mirror!.freeBlocks)) best = i;
      }
      if (best < 0) return 0;
      this.owner.set(seqId, links[best]!);
      links = [links[best]!];
      found = [each[best]!];
    } else {
      // Head partitioning: every worker attaches the same number of blocks (their mirrors agree; the
      // longest all of them hold, to be sure).
      found = links.length > 0 ? longestCommonPrefix(this.geometry, links.map(poolsOf), keys) : null;
    }
    if (!found) return 0;
    for (let i = 0; i < links.length; i++) {
      const f = found[i]!;
      attachPrefix(poolsOf(links[i]!), seqId, f);
      this.post(links[i]!, {
        type: MsgType.ATTACH,
        ints: [seqId, f.global.length, f.windowFrom, ...f.global, ...f.window],
      });
    }
    return found[0]!.global.length;
  }

  private publishPrefix(seqId: number, index: number, key: string): void {
    for (const l of this.linksFor(seqId)) {
      const kept = retainPrefix(poolsOf(l), seqId, index, key);
      if (kept !== 0) this.post(l, { type: MsgType.RETAIN, ints: [seqId, index, kept] });
    }
  }

  release(seqId: number): void {
    for (const l of this.linksFor(seqId)) {
      if (!l.mirror?.table(seqId)) continue;
      l.mirror!.release(seqId);
      this.post(l, { type: MsgType.RELEASE, ints: [seqId] });
    }
    this.owner.delete(seqId);
  }

  usage(): readonly KvUsage[] {
    return this.links.map((l) => ({
      worker: l.endpoint.name,
      usedBlocks: l.mirror?.usedBlocks ?? 0,
      totalBlocks: l.mirror?.numBlocks ?? 0,
      blockSize: this.blockSize,
    }));
  }

  /** Asks each live worker for its own block counts (to check the mirror, and for tests). */
  async workerStats(): Promise<(WorkerStats | null)[]> {
    return Promise.all(
      this.links.map((l) =>
        l.alive && l.rpc
          ? l.rpc
              .request({ type: MsgType.STATS }, (m) => parseControl(m, workerStatsSchema, "STATS reply"))
              .catch(() => null)
          : Promise.resolve(null),
      ),
    );
  }

  private post(l: Link, m: Message): void {
    l.channel!.send(m).catch(() => {
      /* a lost connection is reported through onClose */
    });
  }

  /** The micro-batch a step belongs to, checked against the buffers made for it. */
  private batchOf(step: AttentionStep): number {
    const mb = step.microBatch;
    if (!(mb >= 0 && mb < this.microBatches))
      throw new Error(
        `micro-batch ${mb} is outside the ${this.microBatches} this service was configured for`,
      );
    return mb;
  }

  beginLayer(layer: number, step: AttentionStep, q: Float32Array): void {
    const mb = this.batchOf(step);
    if (layer === 0) this.sendSteps(mb, step);
    const g = this.geometry;
    const group = g.numHeads / g.numKvHeads;
    for (const l of this.active()) {
      const b = l.batches[mb]!;
      const n = b.sub.nTokens;
      if (n === 0) continue;
      if (this.dpMode) {
        try {
          l.dp!.postQ(mb, layer, q, b.sub, this.qWidthTotal, l.outColOff, this.replyTimeoutMs);
        } catch (e) {
          this.lostOnPost(l, e);
        }
        continue;
      }
      const w = (l.kvHi - l.kvLo) * group * g.headDim;
      gatherRows(b.q, q, b.sub.rows, n, this.qWidthTotal, l.kvLo * group * g.headDim, w);
      b.qInts[0] = mb;
      b.qInts[1] = layer;
      this.post(l, {
        type: MsgType.Q,
        ints: b.qInts,
        tensors: [{ dtype: "f32", shape: [n * w], data: b.q.subarray(0, n * w) }],
      });
    }
  }

  /** Routes the step's sequences to workers and sends each its STEP (once per step, at layer 0). */
  private sendSteps(mb: number, step: AttentionStep): void {
    const active = this.active();
    for (const l of active) l.batches[mb]!.sub.reset(mb);
    for (let s = 0; s < step.nSeqs; s++) {
      if (this.partition === "head") {
        for (const l of active) l.batches[mb]!.sub.addSeq(step, s);
      } else {
        const o = this.owner.get(step.seqIds[s]!);
        if (o?.alive && o.mirror) o.batches[mb]!.sub.addSeq(step, s);
      }
    }
    for (const l of active) {
      const b = l.batches[mb]!;
      const sub = b.sub;
      if (sub.nTokens === 0) continue;
      if (this.dpMode) {
        try {
          l.dp!.postStep(mb, sub, l.mirror!, this.replyTimeoutMs);
        } catch (e) {
          this.lostOnPost(l, e);
        }
        continue;
      }
      b.stepInts[0] = mb;
      b.stepInts[1] = sub.nTokens;
      b.stepInts[2] = sub.nSeqs;
      this.post(l, {
        type: MsgType.STEP,
        ints: b.stepInts,
        tensors: [
          { dtype: "i32", shape: [sub.nSeqs], data: sub.seqIds.subarray(0, sub.nSeqs) },
          { dtype: "i32", shape: [sub.nSeqs + 1], data: sub.seqStart.subarray(0, sub.nSeqs + 1) },
          { dtype: "i32", shape: [sub.nTokens], data: sub.positions.subarray(0, sub.nTokens) },
        ],
      });
    }
  }

  finishLayer(
    layer: number,
    step: AttentionStep,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
  ): void | Promise<void> {
    const mb = this.batchOf(step);
    // The workers with rows in this micro-batch: the first n entries of a buffer of its own,
    // written in place every layer. Emptied by `length = 0` and pushed again, the buffer cost the
    // engine thread 0.6-3 µs a layer (V8 trims the backing store, then grows a new one).
    const links = this.sending[mb]!;
    let n = 0;
    for (const l of this.active()) if (l.batches[mb]!.sub.nTokens > 0) links[n++] = l;
    if (this.dpMode) {
      // Alone in flight (depth 1, or the pipeline launched this micro-batch by itself): waited for
      // in place, with no promise and no pump.
      const now = this.microBatches === 1 || step.alone === true;
      return this.finishOnDataPlane(mb, layer, links, n, now, k, v, out);
    }
    const p = this.pending[mb]!;
    const done = new Promise<void>((resolve, reject) => {
      p.remaining = n;
      p.failed = false;
      p.resolve = resolve;
      p.reject = reject;
    });
    if (n === 0) p.resolve();
    for (let i = 0; i < n; i++) this.sendKv(links[i]!, mb, layer, k, v, out, p);
    return done;
  }

  /**
   * Posts each of the first n workers its rows' k and v on the data plane; their OUT lands in `out`
   * when waited for: here and now where `now` (no promise, no event-loop turn), else by the
   * pipeline's pump.
   */
  private finishOnDataPlane(
    mb: number,
    layer: number,
    links: readonly Link[],
    n: number,
    now: boolean,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
  ): Promise<void> | undefined {
    if (now && n === 1 && links[0]!.dp!.shm) return this.finishOnOne(mb, layer, links, k, v, out);
    const w = this.kvWidthTotal;
    const hd = this.geometry.headDim;
    for (let i = 0; i < n; i++) {
      const l = links[i]!;
      try {
        l.dp!.postKv(mb, layer, k, v, l.batches[mb]!.sub, w, l.kvLo * hd, this.replyTimeoutMs);
      } catch (e) {
        this.lostOnPost(l, e);
      }
    }
    if (now) {
      this.waits!.waitNow(mb, links, n, out);
      return undefined;
    }
    return this.waits!.expect(mb, links, n, out);
  }

  /**
   * finishOnDataPlane for one worker over shared memory, waited for in place: the KV posted and
   * its OUT taken in one native call where the reply comes within the spin budget (each call and
   * object the engine thread touches between layers costs it about a µs), else waited for as usual.
   */
  private finishOnOne(
    mb: number,
    layer: number,
    links: readonly Link[],
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
  ): undefined {
    const l = links[0]!;
    let micros = -1;
    try {
      micros = l.dp!.postKvTake(
        mb,
        layer,
        k,
        v,
        l.batches[mb]!.sub,
        this.kvWidthTotal,
        l.kvLo * this.geometry.headDim,
        this.replyTimeoutMs,
        out,
        this.qWidthTotal,
        l.outColOff,
      );
    } catch (e) {
      this.lostOnPost(l, e);
    }
    if (micros >= 0) this.attentionMicros += micros;
    else this.waits!.waitNow(mb, links, 1, out);
    return undefined;
  }

  /** A worker that cannot take a data-plane post (failed, gone, full past the bound) is lost. */
  private lostOnPost(l: Link, e: unknown): never {
    const reason = (e as Error).message;
    this.declareLost(l, reason);
    throw new AttentionWorkerLostError(l.endpoint.name, reason);
  }

  /** Sends one worker its rows' k and v; its OUT lands in their rows of `out`. */
  private sendKv(
    l: Link,
    mb: number,
    layer: number,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    p: PendingLayer,
  ): void {
    const g = this.geometry;
    const group = g.numHeads / g.numKvHeads;
    const b = l.batches[mb]!;
    const rows = b.sub.rows;
    const nRows = b.sub.nTokens;
    const kw = (l.kvHi - l.kvLo) * g.headDim;
    const qw = kw * group;
    gatherRows(b.k, k, rows, nRows, this.kvWidthTotal, l.kvLo * g.headDim, kw);
    gatherRows(b.v, v, rows, nRows, this.kvWidthTotal, l.kvLo * g.headDim, kw);
    const n = nRows * kw;
    b.kvInts[0] = mb;
    b.kvInts[1] = layer;
    l.rpc!.request(
      {
        type: MsgType.KV,
        ints: b.kvInts,
        tensors: [
          { dtype: "f32", shape: [n], data: b.k.subarray(0, n) },
          { dtype: "f32", shape: [n], data: b.v.subarray(0, n) },
        ],
      },
      (reply: ReceivedMessage) => {
        const data = reply.tensors[0]?.data;
        if (!(data instanceof Float32Array) || data.length !== nRows * qw)
          throw new Error(`bad OUT from ${l.endpoint.name}`);
        scatterRows(out, data, rows, nRows, this.qWidthTotal, l.kvLo * group * g.headDim, qw);
        this.attentionMicros += reply.ints[2] ?? 0;
      },
      this.replyTimeoutMs,
    ).then(
      () => {
        if (--p.remaining === 0 && !p.failed) p.resolve();
      },
      (e: Error) => {
        if (e instanceof RequestTimeoutError)
          this.declareLost(l, `no reply within ${this.replyTimeoutMs} ms`);
        if (p.failed) return;
        p.failed = true;
        p.reject(l.alive ? e : new AttentionWorkerLostError(l.endpoint.name, l.lostReason || e.message));
      },
    );
  }

  /** A worker that stopped answering is treated as one that died: its connection is closed. */
  private declareLost(l: Link, reason: string): void {
    if (!l.alive) return;
    const channel = l.channel;
    this.onLost(l, reason);
    void channel?.close(reason).catch(() => undefined);
  }

  /**
   * The data plane as model workers see it: each serving worker's segment (same host) or data-plane
   * socket (TCP: address and token, a model worker connects with its own peer id), and where its
   * share sits in a full q/out row and k/v row. Null (with the reason) unless every serving worker
   * has a native plane, all of one kind.
   */
  sharedPlane(): { targets: SharedPlaneTarget[] } | { reason: string } {
    if (!this.dpMode) return { reason: "not every attention worker has the native data plane" };
    const hd = this.geometry.headDim;
    const targets: SharedPlaneTarget[] = [];
    for (const l of this.active()) {
      const dp = l.dp!;
      const where = dp.tcp ? { tcp: { ...dp.tcp } } : { segment: dp.name };
      targets.push({ ...where, shape: dp.shape, outColOff: l.outColOff, kvColOff: l.kvLo * hd });
    }
    if (new Set(targets.map((t) => t.tcp === undefined)).size > 1)
      return { reason: "some attention workers are reached over shared memory and some over TCP" };
    return { targets };
  }

  /**
   * Posts a micro-batch's STEP to every serving worker, for model workers to post its layers:
   * returns, per serving worker (in `sharedPlane` order), the rows of the step it serves.
   */
  postStepForModelWorkers(step: AttentionStep): readonly SubStep[] {
    const mb = this.batchOf(step);
    if (!this.dpMode) throw new Error("model workers need the native data plane with every attention worker");
    this.sendSteps(mb, step);
    return this.active().map((l) => l.batches[mb]!.sub);
  }

  /**
   * Model workers post the layers, so no wait of this service sees a worker fail: the front end
   * asks here. A failed or gone worker is declared lost (recovery follows); returns its reason.
   */
  probeDataPlane(): string {
    for (const l of this.active()) {
      const why = l.dp?.failure();
      if (why) {
        this.declareLost(l, why);
        return `attention worker ${l.endpoint.name} lost: ${why}`;
      }
    }
    return "";
  }

  /**
   * A step posted by model workers failed half way: waits until each worker has answered what was
   * posted, so the micro-batch can start again from its STEP. False if one did not in time.
   */
  settleForModelWorkers(mb: number): boolean {
    let ok = true;
    for (const l of this.active()) if (l.dp && !l.dp.settle(mb, this.replyTimeoutMs)) ok = false;
    return ok;
  }

  async close(): Promise<void> {
    for (const l of this.links) {
      l.dp?.close();
      l.dp = null;
    }
    await Promise.all(this.links.map((l) => l.channel?.close("engine shutting down").catch(() => undefined)));
    await Promise.all(this.links.map((l) => l.endpoint.close?.().catch(() => undefined)));
  }
}

/** One serving attention worker's data plane as a model worker reaches it: its segment, or its socket. */
export type SharedPlaneTarget = (
  | { readonly segment: string; readonly tcp?: undefined }
  | {
      readonly tcp: { readonly host: string; readonly port: number; readonly token: string };
      readonly segment?: undefined;
    }
) &
  SharedPlaneShare;

/** Where a worker's share sits in full rows, and its plane's shape. */
export interface SharedPlaneShare {
  readonly shape: DataPlaneShape;
  /** Its query heads' first column in a full q/out row. */
  readonly outColOff: number;
  /** Its KV heads' first column in a full k/v row. */
  readonly kvColOff: number;
}

/** Spin of the data plane's waits: about one layer of a small model's model-side compute. */
const DEFAULT_SPIN_MICROS = 200;

/** How long connecting a TCP data-plane socket may take (the engine thread waits for it). */
const TCP_CONNECT_MS = 5_000;

/** CONFIGURE may take this many layers' worth of the reply bound (it allocates the KV cache). */
const CONFIGURE_REPLIES_PER_LAYER = 4;

function divisors(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1).filter((d) => n % d === 0);
}

/** The sinks of query heads [h0, h0 + n) of every layer, from [layers, heads] logits. */
function headSinks(sinks: Float32Array, heads: number, h0: number, n: number): number[] {
  const out: number[] = [];
  for (let at = 0; at < sinks.length; at += heads) for (let h = h0; h < h0 + n; h++) out.push(sinks[at + h]!);
  return out;
}
