import { randomBytes } from "node:crypto";
import type { KernelBackend } from "../kernels/backend.js";
import { describeKvDtype } from "../kernels/index.js";
import { checkKvBlockSize } from "../kernels/kv-cache.js";
import type { Channel } from "../transport/channel.js";
import { parseControl } from "../transport/control.js";
import type { ReceivedMessage, WireTensor } from "../transport/message.js";
import { errorReply } from "../transport/rpc.js";
import { dataPlaneShape } from "./data-plane-link.js";
import { DATA_PLANE_LAYOUT, type DataPlaneWorkerInfo, dataPlaneAddon } from "./data-plane-native.js";
import { DataPlaneServer } from "./data-plane-server.js";
import { KvAttention, type KvGeometry, kvBytesPerBlock } from "./kv-attention.js";
import {
  attachPrefix,
  type PrefixPools,
  RETAINED_GLOBAL,
  RETAINED_WINDOW,
  retainPrefix,
} from "./prefix-pools.js";
import {
  ATTENTION_PROTOCOL_VERSION,
  type ConfigureReply,
  type ConfigureRequest,
  configureRequestSchema,
  MsgType,
  type WorkerStats,
} from "./protocol.js";
import type { AttentionStep } from "./service.js";
import { globalBlocksForBudget } from "./window-blocks.js";

/** One in-flight micro-batch on the worker: its step metadata and its attention buffers. */
interface MicroBatchState {
  readonly step: AttentionStep;
  readonly q: Float32Array;
  readonly out: Float32Array;
  readonly lse: Float32Array;
  readonly lateOut: Float32Array;
  readonly lateLse: Float32Array;
  prepared: boolean;
  /** Layer whose early pass ran (q arrived), or -1. */
  earlyLayer: number;
  /** Milliseconds the early pass of `earlyLayer` took: reported with the layer's OUT. */
  earlyMs: number;
  /** OUT's header: per micro-batch, as an OUT may still wait unsent when another tag replies. */
  readonly replyInts: Int32Array;
}

export interface WorkerSessionOptions {
  /** This worker's KV budget in bytes (it grants min(own, requested)). */
  readonly kvMemory: number;
  readonly log: (line: string) => void;
  /** Spin budget of the native data-plane loop before it sleeps (µs); default 1000. */
  readonly spinMicros?: number;
  /**
   * A model mixing window and global layers keeps the window layers' KV in a pool of its own that
   * holds only blocks inside the window (window-blocks.ts). Attention workers do; a prefill
   * instance's session does not (its KV hand-off reads the one block table).
   */
  readonly freeWindowBlocks?: boolean;
}

/** How often the control plane looks at a native loop's state (a failed loop ends the connection). */
const DATA_PLANE_WATCH_MS = 100;

/**
 * The attention worker's side of one model-side connection: a KV cache sized at CONFIGURE, block
 * tables it alone owns, and decode/prefill attention with early q. Protocol violations throw,
 * which closes this connection only; the worker process and its other connections carry on.
 */
export class AttentionWorkerSession {
  private kv: KvAttention | null = null;
  private config: ConfigureRequest | null = null;
  private batches: MicroBatchState[] = [];
  /** The native loop serving this connection's per-layer exchange, when the model side asked. */
  private dataPlane: DataPlaneServer | null = null;
  private dataPlaneWatch: NodeJS.Timeout | null = null;
  /** The TCP data plane's port and token for the CONFIGURE reply, when that is the one started. */
  private dataPlaneTcp: { port: number; token: string } | null = null;

  constructor(
    private readonly channel: Channel,
    private readonly backend: KernelBackend,
    private readonly options: WorkerSessionOptions,
  ) {
    channel.onMessage((m) => this.onMessage(m));
    channel.onClose((info) => {
      options.log(`connection ${channel.description} closed: ${info.reason}`);
      this.stopDataPlane();
      this.kv = null;
      this.batches = [];
    });
  }

  /** The KV cache made at CONFIGURE (null before): a prefill instance prefills straight into it. */
  /** The native data-plane loop's state and counters, or null when this connection has none. */
  dataPlaneInfo(): DataPlaneWorkerInfo | null {
    return this.dataPlane?.info() ?? null;
  }

  get cache(): KvAttention | null {
    return this.kv;
  }

  /** Blocks in use (for tests and stats). */
  stats(): WorkerStats {
    const a = this.kv?.allocator;
    return {
      usedBlocks: a?.usedBlocks ?? 0,
      totalBlocks: a?.numBlocks ?? 0,
      sequences: a ? [...a.sequences()].length : 0,
      cachedBlocks: a?.cachedBlocks ?? 0,
      windowUsedBlocks: this.kv?.windowAllocator?.usedBlocks ?? 0,
      windowCachedBlocks: this.kv?.windowAllocator?.cachedBlocks ?? 0,
    };
  }

  private onMessage(m: ReceivedMessage): void {
    switch (m.type) {
      case MsgType.CONFIGURE:
        this.configure(m);
        return;
      case MsgType.STATS:
        void this.channel.send({ type: MsgType.STATS, requestId: m.requestId, control: this.stats() });
        return;
    }
    const kv = this.kv;
    if (!kv) throw new Error(`message type ${m.type} before CONFIGURE`);
    // STEP, Q and KV may come as messages even when a data plane was set up: the model side uses
    // the data plane only while every worker of its layout has one (else all of them go over
    // messages), and sends each step one way only.
    switch (m.type) {
      case MsgType.RESERVE: {
        need(m.ints.length === 3, "RESERVE needs [seqId, numTokens, ahead]");
        const [seqId, n, ahead] = [m.ints[0]!, m.ints[1]!, m.ints[2]!];
        need(
          n >= 0 && ahead >= 0 && n + ahead <= this.config!.maxContext,
          `RESERVE of ${n} + ${ahead} tokens exceeds the context`,
        );
        if (!kv.reserve(seqId, n, ahead))
          this.options.log(
            `RESERVE seq ${seqId} to ${n} tokens: out of blocks (model-side mirror out of step)`,
          );
        return;
      }
      case MsgType.ATTACH:
        this.attach(kv, m);
        return;
      case MsgType.RETAIN:
        this.retain(kv, m);
        return;
      case MsgType.RELEASE:
        need(m.ints.length === 1, "RELEASE needs [seqId]");
        kv.release(m.ints[0]!);
        return;
      case MsgType.RESET:
        kv.releaseAll();
        return;
      case MsgType.STEP:
        this.step(kv, m);
        return;
      case MsgType.Q: {
        const t = this.batchOf(m);
        const layer = this.layerOf(m);
        need(t.prepared, "Q before STEP");
        const q = this.tensor(m, 0, "f32", t.step.nTokens * this.qWidth());
        t.q.set(q.data as Float32Array);
        const t0 = performance.now();
        kv.runEarly(layer, t.step as AttentionStep, t.q, t.out, t.lse);
        t.earlyMs = performance.now() - t0;
        t.earlyLayer = layer;
        return;
      }
      case MsgType.KV: {
        const t = this.batchOf(m);
        const layer = this.layerOf(m);
        need(t.earlyLayer === layer, `KV for layer ${layer} before its Q`);
        const w = t.step.nTokens * this.config!.numKvHeads * this.config!.headDim;
        const k = this.tensor(m, 0, "f32", w).data as Float32Array;
        const v = this.tensor(m, 1, "f32", w).data as Float32Array;
        const t0 = performance.now();
        kv.finishLate(layer, t.step as AttentionStep, t.q, k, v, t.out, t.lse, t.lateOut, t.lateLse);
        t.earlyLayer = -1;
        t.replyInts[0] = m.ints[0]!;
        t.replyInts[1] = layer;
        // Compute of the whole layer: the early pass over cached keys (most of it) and the late one.
        t.replyInts[2] = Math.round((performance.now() - t0 + t.earlyMs) * 1000);
        const n = t.step.nTokens * this.qWidth();
        void this.channel.send({
          type: MsgType.OUT,
          requestId: m.requestId,
          ints: t.replyInts,
          tensors: [{ dtype: "f32", shape: [n], data: t.out.subarray(0, n) }],
        });
        return;
      }
      default:
        throw new Error(`unknown attention message type ${m.type}`);
    }
  }

  private configure(m: ReceivedMessage): void {
    let req: ConfigureRequest;
    try {
      req = parseControl(m, configureRequestSchema, "CONFIGURE");
    } catch (e) {
      void this.channel.send(errorReply(m, (e as Error).message));
      return;
    }
    if (req.numHeads % req.numKvHeads !== 0) {
      void this.channel.send(
        errorReply(m, `numHeads (${req.numHeads}) must be a multiple of numKvHeads (${req.numKvHeads})`),
      );
      return;
    }
    // Per-micro-batch buffers are sized by the request, not by the KV budget: bound them too, so a
    // peer cannot make this process allocate without limit.
    const stepBytes = req.maxTags * 4 * req.maxTokens * req.numHeads * (3 * req.headDim + 2);
    const stepLimit = Math.max(this.options.kvMemory, MIN_STEP_BUFFER_LIMIT);
    if (stepBytes > stepLimit) {
      void this.channel.send(
        errorReply(
          m,
          `step buffers for maxTags × maxTokens × numHeads × headDim would take ${stepBytes} bytes (limit ${stepLimit})`,
        ),
      );
      return;
    }
    if (req.slidingLayers && req.slidingLayers.length !== req.numLayers) {
      void this.channel.send(
        errorReply(m, `slidingLayers has ${req.slidingLayers.length} entries for ${req.numLayers} layers`),
      );
      return;
    }
    if (req.sinks && req.sinks.length !== req.numLayers * req.numHeads) {
      void this.channel.send(
        errorReply(
          m,
          `sinks has ${req.sinks.length} entries for ${req.numLayers} layers of ${req.numHeads} heads`,
        ),
      );
      return;
    }
    try {
      checkKvBlockSize(req.kvDtype, req.blockSize);
    } catch (e) {
      void this.channel.send(errorReply(m, (e as Error).message));
      return;
    }
    const { sinks, ...rest } = req;
    const geometry: KvGeometry = { ...rest, ...(sinks ? { sinks: Float32Array.from(sinks) } : {}) };
    const budget = Math.min(this.options.kvMemory, req.kvMemory ?? this.options.kvMemory);
    const split = this.options.freeWindowBlocks === true;
    const numBlocks = globalBlocksForBudget(geometry, budget, split);
    if (numBlocks < 1) {
      void this.channel.send(
        errorReply(m, `KV budget of ${budget} bytes holds no block of ${kvBytesPerBlock(geometry)} bytes`),
      );
      return;
    }
    this.stopDataPlane();
    this.kv = new KvAttention(this.backend, geometry, numBlocks, split);
    this.config = req;
    const dataPlaneNote = req.dataPlane ? this.startDataPlane(req, req.dataPlane, this.kv) : "";
    const qw = req.maxTokens * req.numHeads * req.headDim;
    const lw = req.maxTokens * req.numHeads;
    this.batches = Array.from({ length: req.maxTags }, (_, microBatch) => ({
      step: {
        microBatch,
        nTokens: 0,
        nSeqs: 0,
        seqIds: new Int32Array(req.maxSeqs),
        seqStart: new Int32Array(req.maxSeqs + 1),
        positions: new Int32Array(req.maxTokens),
      },
      q: new Float32Array(qw),
      out: new Float32Array(qw),
      lse: new Float32Array(lw),
      lateOut: new Float32Array(qw),
      lateLse: new Float32Array(lw),
      prepared: false,
      earlyLayer: -1,
      earlyMs: 0,
      replyInts: new Int32Array(3),
    }));
    const reply: ConfigureReply = {
      version: ATTENTION_PROTOCOL_VERSION,
      numBlocks,
      windowBlocks: this.kv.windowAllocator?.numBlocks ?? 0,
      pid: process.pid,
      kernels: this.backend.describe(),
      dataPlane: this.dataPlane !== null,
      dataPlaneNote,
      dataPlaneTcp: this.dataPlane && this.dataPlaneTcp ? this.dataPlaneTcp : null,
    };
    this.options.log(
      `configured: ${req.numLayers} layers, ${req.numHeads} q / ${req.numKvHeads} kv heads × ${req.headDim}, ${numBlocks} blocks of ${req.blockSize} tokens (${describeKvDtype(req.kvDtype, this.backend)})`,
    );
    void this.channel.send({ type: MsgType.CONFIGURE, requestId: m.requestId, control: reply });
  }

  /**
   * Starts the native loop on the model side's segment (same host) or on a data-plane socket this
   * worker opens for the connection (TCP); returns why not, or "".
   */
  private startDataPlane(
    config: ConfigureRequest,
    req: NonNullable<ConfigureRequest["dataPlane"]>,
    kv: KvAttention,
  ): string {
    this.dataPlaneTcp = null;
    const refuse = (why: string) => {
      this.options.log(`data plane refused, per-layer exchange over messages: ${why}`);
      return why;
    };
    if (req.layout !== DATA_PLANE_LAYOUT)
      return refuse(`data-plane layout ${req.layout}, this worker speaks ${DATA_PLANE_LAYOUT}`);
    if (this.backend.name !== "native") return refuse(`the ${this.backend.name} kernels have no data plane`);
    const addon = dataPlaneAddon();
    if (typeof addon === "string") return refuse(addon);
    const options = { threads: 0, spinUs: this.options.spinMicros ?? DEFAULT_DATA_PLANE_SPIN_US };
    try {
      if ("segment" in req) {
        // Only a peer that shares this host's memory anyway may name a segment here.
        if (!this.channel.sameHost)
          return refuse("a data-plane segment needs a same-host (shared-memory) connection");
        this.dataPlane = DataPlaneServer.start(addon, req.segment, kv, options, req.shared === true);
      } else {
        const local = this.channel.addresses?.local;
        if (!local) return refuse("a TCP data plane needs a TCP connection");
        const token = randomBytes(16).toString("hex");
        const started = DataPlaneServer.startTcp(addon, local, token, dataPlaneShape(config), kv, options);
        this.dataPlane = started.server;
        this.dataPlaneTcp = { port: started.port, token };
      }
    } catch (e) {
      return refuse((e as Error).message);
    }
    // A loop that rejects a posting ends this connection (only this one), as a bad message does.
    this.dataPlaneWatch = setInterval(() => {
      const info = this.dataPlane?.info();
      if (info?.state !== "failed") return;
      this.options.log(`data plane failed: ${info.error}`);
      void this.channel.close(`data plane: ${info.error}`);
    }, DATA_PLANE_WATCH_MS);
    this.dataPlaneWatch.unref();
    this.options.log(`per-layer exchange on the native data plane (${this.dataPlane.segmentName})`);
    return "";
  }

  private stopDataPlane(): void {
    if (this.dataPlaneWatch) clearInterval(this.dataPlaneWatch);
    this.dataPlaneWatch = null;
    this.dataPlane?.stop();
    this.dataPlane = null;
  }

  private step(kv: KvAttention, m: ReceivedMessage): void {
    const t = this.batchOf(m);
    need(m.ints.length === 3, "STEP needs [tag, nTokens, nSeqs]");
    const nTokens = m.ints[1]!;
    const nSeqs = m.ints[2]!;
    const c = this.config!;
    need(nTokens >= 1 && nTokens <= c.maxTokens, `STEP of ${nTokens} tokens exceeds ${c.maxTokens}`);
    need(nSeqs >= 1 && nSeqs <= c.maxSeqs && nSeqs <= nTokens, `STEP of ${nSeqs} sequences is out of range`);
    const seqIds = this.tensor(m, 0, "i32", nSeqs).data as Int32Array;
    const seqStart = this.tensor(m, 1, "i32", nSeqs + 1).data as Int32Array;
    const positions = this.tensor(m, 2, "i32", nTokens).data as Int32Array;
    need(seqStart[0] === 0 && seqStart[nSeqs] === nTokens, "STEP seqStart must run from 0 to nTokens");
    for (let s = 0; s < nSeqs; s++) need(seqStart[s]! < seqStart[s + 1]!, "STEP seqStart must increase");
    for (let i = 0; i < nTokens; i++)
      need(positions[i]! >= 0 && positions[i]! < c.maxContext, "STEP position out of range");
    t.step.seqIds.set(seqIds);
    t.step.seqStart.set(seqStart);
    t.step.positions.set(positions);
    t.step.nTokens = nTokens;
    t.step.nSeqs = nSeqs;
    kv.prepare(t.step);
    t.prepared = true;
    t.earlyLayer = -1;
  }

  private qWidth(): number {
    return this.config!.numHeads * this.config!.headDim;
  }

  private batchOf(m: ReceivedMessage): MicroBatchState {
    need(m.ints.length >= 1, "missing micro-batch tag");
    const t = this.batches[m.ints[0]!];
    need(t !== undefined, `micro-batch tag ${m.ints[0]} out of range`);
    return t!;
  }

  private layerOf(m: ReceivedMessage): number {
    need(m.ints.length === 2, "expected [tag, layer]");
    const layer = m.ints[1]!;
    need(layer >= 0 && layer < this.config!.numLayers, `layer ${layer} out of range`);
    return layer;
  }

  /** ATTACH: a new sequence starts on cached blocks of both pools (prefix-pools.ts), as the mirror did. */
  private attach(kv: KvAttention, m: ReceivedMessage): void {
    need(m.ints.length >= 4, "ATTACH needs [seqId, blocks, windowFrom, block..., windowBlock...]");
    const [seqId, n, from] = [m.ints[0]!, m.ints[1]!, m.ints[2]!];
    need(
      n >= 1 && n <= kv.maxBlocksPerSeq,
      `ATTACH of ${n} blocks (the context holds ${kv.maxBlocksPerSeq})`,
    );
    const windowed = kv.windowAllocator !== null;
    need(windowed ? from >= 0 && from <= n : from === 0, `ATTACH: window part from block ${from} of ${n}`);
    need(
      m.ints.length === 3 + n + (windowed ? n - from : 0),
      `ATTACH of ${n} blocks from ${from} has ${m.ints.length} ints`,
    );
    const found = {
      global: Array.from(m.ints.subarray(3, 3 + n)),
      windowFrom: from,
      window: Array.from(m.ints.subarray(3 + n)),
    };
    protocolOp("ATTACH", () => attachPrefix(this.pools(kv), seqId, found));
  }

  /** RETAIN: the sequence's block holds a cached prefix in the pools the model side names. */
  private retain(kv: KvAttention, m: ReceivedMessage): void {
    need(m.ints.length === 3, "RETAIN needs [seqId, index, pools]");
    need(
      m.ints[2]! >= 1 && m.ints[2]! <= (RETAINED_GLOBAL | RETAINED_WINDOW),
      `RETAIN: pools ${m.ints[2]} is not a set of RETAINED_* flags`,
    );
    protocolOp("RETAIN", () => retainPrefix(this.pools(kv), m.ints[0]!, m.ints[1]!, undefined, m.ints[2]!));
  }

  /** The cache's pools, as prefix caching's operations take them. */
  private pools(kv: KvAttention): PrefixPools {
    return { global: kv.allocator, window: kv.windowAllocator };
  }

  private tensor(m: ReceivedMessage, i: number, dtype: WireTensor["dtype"], length: number): WireTensor {
    const t = m.tensors[i];
    need(t !== undefined, `missing tensor ${i}`);
    need(t!.dtype === dtype, `tensor ${i} must be ${dtype}, got ${t!.dtype}`);
    need(t!.data.length === length, `tensor ${i} has ${t!.data.length} elements, expected ${length}`);
    return t!;
  }
}

/**
 * Default spin of the data-plane loop before it sleeps: longer than a small model's per-layer
 * model-side compute, so a worker on its own core is awake when the next layer's q arrives (a
 * futex wake-up costs tens of µs per layer; measured in bench/disagg/data-plane). The time spun is
 * counted in the worker's data-plane stats.
 */
const DEFAULT_DATA_PLANE_SPIN_US = 1000;

/** Step buffers may always use this much, even under a smaller KV budget. */
const MIN_STEP_BUFFER_LIMIT = 256 << 20;

function need(ok: boolean, what: string): void {
  if (!ok) throw new Error(`attention protocol: ${what}`);
}

/** An allocator operation a message asks for; what it refuses is the peer's protocol error. */
function protocolOp(what: string, op: () => unknown): void {
  try {
    op();
  } catch (e) {
    need(false, `${what}: ${(e as Error).message}`);
  }
}
