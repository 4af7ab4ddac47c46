import type { KvAttention } from "../attention/kv-attention.js";
import type { WorkerEndpoint } from "../attention/remote-service.js";
import type { Channel } from "../transport/channel.js";
import { RequestTimeoutError } from "../transport/errors.js";
import type { ReceivedMessage } from "../transport/message.js";
import { RpcClient } from "../transport/rpc.js";
import { splitChannel } from "./mux-channel.js";
import { isPdType, PdMsgType } from "./protocol.js";

/** One prefill chunk batch as the decode instance sends it (views into preallocated arrays). */
export interface PrefillBatch {
  nSeqs: number;
  nTokens: number;
  readonly seqIds: Int32Array;
  readonly seqStart: Int32Array;
  readonly positions: Int32Array;
  readonly tokens: Int32Array;
  readonly flags: Int32Array;
}

export function createPrefillBatch(maxTokens: number, maxSeqs: number): PrefillBatch {
  return {
    nSeqs: 0,
    nTokens: 0,
    seqIds: new Int32Array(maxSeqs),
    seqStart: new Int32Array(maxSeqs + 1),
    positions: new Int32Array(maxTokens),
    tokens: new Int32Array(maxTokens),
    flags: new Int32Array(maxSeqs),
  };
}

/**
 * The decode instance's handle on one prefill instance: a single connection (opened once; a lost
 * prefill instance is not restarted: its work is rebuilt elsewhere) whose attention-protocol half
 * is handed to a RemoteAttentionService as its worker endpoint, and whose prefill half sends
 * PREFILL and imports the KV streamed back into the decode instance's cache.
 */
export class PrefillLink {
  alive = false;
  opened = false;
  lostReason = "";
  private rpc: RpcClient | null = null;
  private base: Channel | null = null;
  private readonly lostHandlers: (() => void)[] = [];
  private slots: Int32Array;
  /** Tokens of KV imported, and prefill round trips (for stats). */
  importedTokens = 0;
  prefills = 0;

  constructor(
    readonly name: string,
    private readonly open: () => Promise<Channel>,
    private readonly local: KvAttention,
    readonly pid: () => number | undefined = () => undefined,
    /** Liveness: a PREFILL without a reply this long means the instance is lost (0: no bound). */
    private readonly replyTimeoutMs = 0,
  ) {
    this.slots = new Int32Array(local.geometry.maxTokens);
  }

  /** The endpoint a RemoteAttentionService connects through (once). */
  get endpoint(): WorkerEndpoint {
    return { name: this.name, connect: () => this.connect() };
  }

  private async connect(): Promise<Channel> {
    if (this.opened) throw new Error(`prefill instance ${this.name} is down (${this.lostReason})`);
    this.opened = true;
    const base = await this.open();
    this.base = base;
    const [attention, pd] = splitChannel(base, isPdType);
    this.rpc = new RpcClient(pd, { timeoutMs: 0, onUnsolicited: (m) => this.importKv(m) });
    this.alive = true;
    base.onClose((info) => {
      this.alive = false;
      this.lostReason = info.reason;
      for (const h of this.lostHandlers) h();
    });
    return attention;
  }

  onLost(handler: () => void): void {
    this.lostHandlers.push(handler);
  }

  /** Runs a prefill batch there; resolves with the sampling sequences' logits, after their KV arrived. */
  prefill(b: PrefillBatch, vocab: number): Promise<Float32Array> {
    if (!this.rpc || !this.alive) return Promise.reject(new Error(`prefill instance ${this.name} is down`));
    this.prefills++;
    const request = this.rpc.request(
      {
        type: PdMsgType.PREFILL,
        ints: [b.nSeqs, b.nTokens],
        tensors: [
          { dtype: "i32", shape: [b.nSeqs], data: b.seqIds.subarray(0, b.nSeqs) },
          { dtype: "i32", shape: [b.nSeqs + 1], data: b.seqStart.subarray(0, b.nSeqs + 1) },
          { dtype: "i32", shape: [b.nTokens], data: b.positions.subarray(0, b.nTokens) },
          { dtype: "i32", shape: [b.nTokens], data: b.tokens.subarray(0, b.nTokens) },
          { dtype: "i32", shape: [b.nSeqs], data: b.flags.subarray(0, b.nSeqs) },
        ],
      },
      (reply) => {
        const t = reply.tensors[0];
        if (!t || !(t.data instanceof Float32Array) || t.data.length % vocab !== 0)
          throw new Error(`bad PREFILL reply from ${this.name}`);
        return t.data.slice();
      },
      this.replyTimeoutMs,
    );
    // A stopped instance answers nothing and its pid still lives: silence past the bound is a loss.
    return request.catch((e: Error) => {
      if (e instanceof RequestTimeoutError && this.alive)
        void this.base?.close(`no PREFILL reply within ${this.replyTimeoutMs} ms`).catch(() => undefined);
      throw e;
    });
  }

  /** KV_LAYER: writes one layer's KV rows into the decode instance's cache at their positions. */
  private importKv(m: ReceivedMessage): void {
    if (m.type !== PdMsgType.KV_LAYER || m.ints.length !== 2) throw new Error("unexpected prefill message");
    const [layer, n] = [m.ints[0]!, m.ints[1]!];
    const kv = this.local;
    const g = kv.geometry;
    const w = g.numKvHeads * g.headDim;
    const [seqs, pos, k, v] = m.tensors;
    if (layer < 0 || layer >= g.numLayers || n < 1 || n > g.maxTokens) throw new Error("bad KV_LAYER header");
    if (
      seqs?.data.length !== n ||
      pos?.data.length !== n ||
      k?.data.length !== n * w ||
      v?.data.length !== n * w
    )
      throw new Error("bad KV_LAYER tensors");
    const bs = g.blockSize;
    for (let r = 0; r < n; r++) {
      const table = kv.allocator.table(seqs.data[r]!);
      const p = pos.data[r]!;
      if (!table || p < 0 || table.length * bs <= p)
        throw new Error(`KV_LAYER for sequence ${seqs.data[r]} position ${p} with no block reserved`);
      this.slots[r] = table[(p / bs) | 0]! * bs + (p % bs);
    }
    kv.backend.kvWrite(kv.caches[layer]!, k.data as Float32Array, v.data as Float32Array, this.slots, n);
    if (layer === 0) this.importedTokens += n;
  }

  async close(): Promise<void> {
    await this.base?.close("decode instance shutting down").catch(() => undefined);
  }
}
