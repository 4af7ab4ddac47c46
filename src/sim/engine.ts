import { kvBytesPerToken, nonAttentionFlopsPerToken } from "./cost-model.js";
import { EventKind, EventQueue, eventArg, eventKind } from "./engine-events.js";
import { type AdmissionOutcome, InstanceState, type KvPool } from "./engine-instance.js";
import { LOCAL_POOL, type PoolIndex, REMOTE_POOL, RequestState, RequestTable } from "./engine-requests.js";
import { type EngineTotals, emptyTotals, markSaturationEnd } from "./engine-totals.js";
import { StepCost, type StepInput } from "./instances.js";
import { PrefillStage } from "./prefill-stage.js";
import { SimPrefixCache } from "./prefix-cache.js";
import type { Setup } from "./setup.js";
import type { PrefixBlocks, Trace } from "./trace.js";
import type { SimModel } from "./types.js";

export type { EngineTotals } from "./engine-totals.js";

/**
 * The discrete-event loop. Time advances by batch steps, not tokens: a step of a decode instance
 * gives every running request one token, so per-step work is O(admissions + completions), and
 * per-token quantities (KV growth, token counts, TBT samples) are updated in aggregate.
 */
export function runEngine(trace: Trace, setup: Setup, model: SimModel): EngineTotals {
  return new EventLoop(trace, setup, model).run();
}

const { Queued, Prefilling, Decoding, Done, Rejected } = RequestState;
const POOLS = [LOCAL_POOL, REMOTE_POOL] as const;

class EventLoop {
  private readonly req: RequestTable;
  private readonly insts: InstanceState[];
  private readonly prefill: PrefillStage;
  private readonly events = new EventQueue();
  private readonly totals: EngineTotals;
  private readonly cost = new StepCost();
  private readonly input: StepInput = {
    bLocal: 0,
    ctxLocal: 0,
    bRemote: 0,
    ctxRemote: 0,
    prefillTokens: 0,
    prefillWork: 0,
  };
  /** Prompts are prefilled in chunks on the decode instances (no prefill instances, not decode-only). */
  private readonly colocatedPrefill: boolean;
  private readonly flopsPerToken: number;
  private readonly kvBytesPerToken: number;
  /** The largest KV pool: a request that cannot fit alone in it would never finish, so it is rejected. */
  private readonly largestPool: number;
  private now = 0;
  /** The next trace request to arrive. */
  private nextArrival = 0;
  /** Requests arrived but not yet admitted to a decode instance (prefill queues included). */
  private pending = 0;
  /** Admissions so far: the latest one's number tags its prefill FIFO entry. */
  private admissions = 0;
  /** The trace's prefix blocks and each decode instance's cache of them, where prefix caching is modelled. */
  private readonly prefixBlocks: PrefixBlocks | null = null;
  private readonly caches: SimPrefixCache[] = [];

  constructor(
    trace: Trace,
    private readonly setup: Setup,
    model: SimModel,
  ) {
    this.req = new RequestTable(trace);
    this.insts = setup.instances.map((m, i) => new InstanceState(i, m));
    this.prefill = new PrefillStage(setup.prefillServers, setup.prefillBatchTokens, this.req.prompt);
    this.totals = emptyTotals(setup.decodeOnly, this.req.finishTime);
    this.colocatedPrefill = setup.prefillServers.length === 0 && !setup.decodeOnly;
    this.flopsPerToken = nonAttentionFlopsPerToken(model);
    this.kvBytesPerToken = kvBytesPerToken(model);
    let largest = 0;
    for (const s of this.insts) largest = Math.max(largest, s.model.localCapacity, s.model.remoteCapacity);
    this.largestPool = largest;
    // Prefix caching where the runtime has it: decode instances prefilling their own prompts.
    const prefix = trace.prefix;
    if (setup.prefixCaching && prefix && this.colocatedPrefill) {
      this.prefixBlocks = prefix;
      this.caches = this.insts.map(
        (s) => new SimPrefixCache(Math.floor(s.model.localCapacity / prefix.blockTokens)),
      );
      this.totals.prefix = { queriedTokens: 0, hitTokens: 0 };
    }
  }

  /**
   * Tokens of a prompt about to be prefilled on instance `s` that its prefix cache holds: whole
   * blocks of its leading run, never its last token (whose logits give the first output token).
   */
  private cachedPrefix(s: InstanceState, id: number): number {
    const p = this.prefixBlocks;
    if (!p) return 0;
    const blocks = this.caches[s.index]!.match(p.ids, p.start[id]!, p.start[id + 1]!);
    const cached = Math.min(
      blocks * p.blockTokens,
      Math.floor((this.req.prompt[id]! - 1) / p.blockTokens) * p.blockTokens,
    );
    // First admissions only (as the runtime counts): not a prompt preempted and prefilled again.
    if (this.req.generated[id] === 0 && this.req.recompute[id] === 0) {
      this.totals.prefix!.queriedTokens += this.req.prompt[id]!;
      this.totals.prefix!.hitTokens += cached;
    }
    return cached;
  }

  /** A prompt was prefilled on instance `s`: its blocks are cached there. */
  private cachePrompt(s: InstanceState, id: number): void {
    const p = this.prefixBlocks;
    if (p) this.caches[s.index]!.insert(p.ids, p.start[id]!, p.start[id + 1]!);
  }

  run(): EngineTotals {
    const { arrival, count } = this.req;
    for (;;) {
      const tArr = this.nextArrival < count ? arrival[this.nextArrival]! : Number.POSITIVE_INFINITY;
      const tEv = this.events.nextTime();
      if (tArr === Number.POSITIVE_INFINITY && tEv === Number.POSITIVE_INFINITY) break;
      if (tArr <= tEv) {
        this.now = tArr;
        this.arrive(this.nextArrival++);
      } else {
        this.now = tEv;
        this.dispatch(this.events.pop());
      }
    }
    return this.totals;
  }

  private dispatch(code: number): void {
    const arg = eventArg(code);
    const kind = eventKind(code);
    if (kind === EventKind.StepEnd) this.endStep(this.insts[arg]!);
    else if (kind === EventKind.StepStart) this.startStep(this.insts[arg]!);
    else if (kind === EventKind.PrefillDone) this.endPrefill(arg);
    else this.route(arg);
  }

  // ---- requests entering and leaving ----

  private arrive(id: number): void {
    const { prompt, output } = this.req;
    if (prompt[id]! + output[id]! + 1 > this.largestPool) {
      this.req.state[id] = Rejected;
      this.totals.rejected++;
      return;
    }
    this.totals.expectedTokens += output[id]!;
    this.pending++;
    if (this.prefill.instances === 0) {
      this.route(id);
      return;
    }
    this.prefill.enqueue(id);
    for (let k = 0; k < this.prefill.instances && this.prefill.waiting; k++) this.startPrefill(k);
  }

  /** A request left the waiting queues; the last one to do so ends the saturated phase. */
  private admitted(): void {
    if (--this.pending === 0 && this.nextArrival >= this.req.count) markSaturationEnd(this.totals, this.now);
  }

  private firstToken(id: number): void {
    this.req.generated[id] = 1;
    this.totals.outputTokens++;
    this.totals.ttft?.add(this.now - this.req.arrival[id]!);
  }

  private finishRequest(id: number): void {
    this.req.state[id] = Done;
    this.req.finishTime[id] = this.now;
    this.totals.completed++;
    if (this.now > this.totals.makespan) this.totals.makespan = this.now;
  }

  // ---- prefill instances (PD / Adrenaline) ----

  private startPrefill(k: number): void {
    const dt = this.prefill.tryStart(k);
    if (dt === null) return;
    this.totals.prefillBusy += dt;
    this.events.push(this.now + dt, EventKind.PrefillDone, k);
  }

  private endPrefill(k: number): void {
    const { prompt, output } = this.req;
    for (const id of this.prefill.finish(k)) {
      this.firstToken(id);
      if (output[id]! <= 1) {
        this.finishRequest(id);
        this.admitted();
      } else this.events.push(this.now + this.setup.kvTransferTime(prompt[id]!), EventKind.KvReady, id);
    }
    this.startPrefill(k);
  }

  // ---- decode instances: routing and admission ----

  /** Queues a request at the least loaded decode instance (KV in use and queued, over capacity). */
  private route(id: number): void {
    let best = 0;
    let bestLoad = Number.POSITIVE_INFINITY;
    for (let i = 0; i < this.insts.length; i++) {
      const s = this.insts[i]!;
      const load = (s.pools[0].used + s.pools[1].used + s.queue.tokens) / s.capacity;
      if (load < bestLoad) {
        bestLoad = load;
        best = i;
      }
    }
    const s = this.insts[best]!;
    this.req.state[id] = Queued;
    this.req.instanceOf[id] = best;
    s.queue.push(id, this.req.prompt[id]! + this.req.generated[id]!);
    if (s.phase === "idle") {
      s.phase = "start-scheduled";
      this.events.push(this.now, EventKind.StepStart, best);
    }
  }

  /** Admits queued requests in order while the batch cap and KV allow; says what stopped it. */
  private admit(s: InstanceState): AdmissionOutcome {
    const { prompt, generated } = this.req;
    while (s.queue.length > 0) {
      const id = s.queue.peek();
      const ctx = prompt[id]! + generated[id]!;
      const running = s.decoding + s.prefilling;
      if (running >= s.model.maxBatch) return "batch-full";
      const poolIdx = this.choosePool(s, ctx, running);
      if (poolIdx === null) return "kv-full";
      s.queue.shift(ctx);
      this.admitted();
      this.place(s, id, poolIdx, ctx);
    }
    return "queue-empty";
  }

  /** The pool a request of `ctx` tokens goes to, or null when neither has room for it. */
  private choosePool(s: InstanceState, ctx: number, running: number): PoolIndex | null {
    const [local, remote] = s.pools;
    const headroom = this.setup.kvHeadroomTokens;
    const wantRemote =
      remote.capacity > 0 &&
      remote.decoding + 1 <= s.model.offloadRatio * (local.decoding + remote.decoding + 1);
    // Keep room for every admitted request to grow a little (vLLM's watermark), or the next steps preempt.
    if (wantRemote && remote.used + ctx + 1 + remote.decoding * headroom <= remote.capacity)
      return REMOTE_POOL;
    if (local.used + ctx + 1 + local.decoding * headroom <= local.capacity) return LOCAL_POOL;
    // An empty instance takes the request wherever it fits, so a bound on N/M can never stall it.
    if (running === 0) {
      if (local.used + ctx + 1 <= local.capacity) return LOCAL_POOL;
      if (remote.used + ctx + 1 <= remote.capacity) return REMOTE_POOL;
    }
    return null;
  }

  /** Puts an admitted request in its pool: to prefill (colocated prompt or recompute) or straight to decode. */
  private place(s: InstanceState, id: number, poolIdx: PoolIndex, ctx: number): void {
    const r = this.req;
    const pool = s.pools[poolIdx];
    r.poolOf[id] = poolIdx;
    pool.order.push(id);
    if ((r.generated[id] === 0 && this.colocatedPrefill) || r.recompute[id]) {
      pool.used += r.prefillReserve(id);
      r.state[id] = Prefilling;
      // A cached prefix is not computed again; the rest attends over it (planPrefillChunks' work).
      const cached = this.cachedPrefix(s, id);
      r.prefillLeft[id] = ctx - cached;
      r.prefillDone[id] = cached;
      r.admitSeq[id] = ++this.admissions;
      s.prefilling++;
      s.prefillFifo.push(id);
      s.prefillSeq.push(this.admissions);
    } else {
      r.state[id] = Decoding;
      pool.used += ctx;
      this.startDecoding(s, pool, id, ctx);
    }
  }

  private startDecoding(s: InstanceState, pool: KvPool, id: number, ctx: number): void {
    pool.decoding++;
    pool.decodingContext += ctx;
    this.req.finishStep[id] = s.step + this.req.output[id]! - this.req.generated[id]!;
    s.finish.push(this.req.finishStep[id]!, id);
  }

  /** Sends the newest request of a pool back to the front of the queue; false when none is left. */
  private preempt(s: InstanceState, pool: KvPool, poolIdx: PoolIndex): boolean {
    const r = this.req;
    while (pool.order.length > 0) {
      const id = pool.order.pop()!;
      if (r.instanceOf[id] !== s.index || r.poolOf[id] !== poolIdx) continue;
      if (r.state[id] === Decoding) {
        const ctx = r.context(id, s.step);
        r.generated[id] = ctx - r.prompt[id]!;
        pool.decoding--;
        pool.decodingContext -= ctx;
        pool.used -= ctx;
      } else if (r.state[id] === Prefilling) {
        pool.used -= r.prefillReserve(id);
        s.prefilling--;
      } else continue;
      r.state[id] = Queued;
      r.recompute[id] = 1;
      this.totals.preemptions++;
      s.queue.pushFront(id, r.prompt[id]! + r.generated[id]!);
      this.pending++;
      return true;
    }
    return false;
  }

  /** Preempts until each pool holds its next step's growth (one token per decoding request). */
  private preemptToFit(s: InstanceState): void {
    for (const poolIdx of POOLS) {
      const pool = s.pools[poolIdx];
      while (pool.used + pool.decoding > pool.capacity && this.preempt(s, pool, poolIdx)) {}
      if (pool.order.length > 4 * (pool.decoding + 64)) {
        const state = this.req.state;
        pool.order = pool.order.filter((id) => state[id] === Decoding || state[id] === Prefilling);
      }
    }
  }

  // ---- decode instances: steps ----

  private startStep(s: InstanceState): void {
    const admission = this.admit(s);
    this.preemptToFit(s);
    const { tokens, work } = this.planPrefillChunks(s);
    const b = s.decoding;
    if (b === 0 && tokens === 0) {
      s.phase = "idle";
      return;
    }
    const [local, remote] = s.pools;
    const input = this.input;
    input.bLocal = local.decoding;
    input.ctxLocal = local.decodingContext;
    input.bRemote = remote.decoding;
    input.ctxRemote = remote.decodingContext;
    input.prefillTokens = tokens;
    input.prefillWork = work;
    s.model.step(input, this.cost);
    s.dt = this.cost.time;
    s.phase = "stepping";
    this.recordStep(s, b, tokens, admission);
    this.events.push(this.now + s.dt, EventKind.StepEnd, s.index);
  }

  /** Chooses the prefill chunks of the next step, oldest admission first, within the chunk budget. */
  private planPrefillChunks(s: InstanceState): { tokens: number; work: number } {
    s.chunkIds.length = 0;
    s.chunkLens.length = 0;
    let budget = this.setup.chunkTokens;
    let work = 0;
    let tokens = 0;
    for (let i = s.prefillHead; i < s.prefillFifo.length && budget > 0; i++) {
      const id = s.prefillFifo[i]!;
      if (!this.livePrefill(s, i)) {
        if (i === s.prefillHead) s.prefillHead++;
        continue;
      }
      const c = Math.min(this.req.prefillLeft[id]!, budget);
      s.chunkIds.push(id);
      s.chunkLens.push(c);
      const o = this.req.prefillDone[id]!;
      work += 2 * c * (o + c / 2);
      tokens += c;
      budget -= c;
    }
    return { tokens, work };
  }

  /** Whether prefill FIFO entry i is still this instance's request being prefilled (not a stale entry). */
  private livePrefill(s: InstanceState, i: number): boolean {
    const id = s.prefillFifo[i]!;
    const r = this.req;
    return r.state[id] === Prefilling && r.admitSeq[id] === s.prefillSeq[i] && r.instanceOf[id] === s.index;
  }

  private recordStep(s: InstanceState, b: number, tokens: number, admission: AdmissionOutcome): void {
    const t = this.totals;
    const cost = this.cost;
    const dt = s.dt;
    const [local, remote] = s.pools;
    t.steps++;
    t.stepTime += dt;
    t.batchTime += b * dt;
    if (b > t.maxBatch) t.maxBatch = b;
    t.limiterTime[cost.limiter] += dt;
    if (admission === "kv-full") t.kvBlockedTime += dt;
    else if (admission === "batch-full") t.batchCapTime += dt;
    t.kvUtilTime += ((local.used + remote.used) / s.capacity) * dt;
    t.flops += this.flopsPerToken * (b + tokens);
    t.kvBytesRead += (local.decodingContext + remote.decodingContext) * this.kvBytesPerToken;
    t.partModel += cost.model * b;
    t.partAttention += cost.attention * b;
    t.partNetwork += cost.network * b;
    t.partPrefill += cost.prefill * b;
    t.partTotal += dt * b;
    t.decodeTokens += b;
  }

  private endStep(s: InstanceState): void {
    s.step++;
    this.growDecoding(s);
    this.finishDecoded(s);
    this.advancePrefills(s);
    this.trimPrefillFifo(s);
    this.startStep(s);
  }

  /** Every decoding request got one token: contexts and KV grow by the batch, one TBT sample per token. */
  private growDecoding(s: InstanceState): void {
    const t = this.totals;
    let b = 0;
    for (const pool of s.pools) {
      b += pool.decoding;
      pool.decodingContext += pool.decoding;
      pool.used += pool.decoding;
      if (pool.capacity > 0 && pool.used / pool.capacity > t.peakKvUtil)
        t.peakKvUtil = pool.used / pool.capacity;
    }
    t.outputTokens += b;
    t.tbt.add(s.dt, b);
  }

  /** Completes the decoding requests whose last token this step produced (stale heap entries skipped). */
  private finishDecoded(s: InstanceState): void {
    const r = this.req;
    while (s.finish.size > 0 && s.finish.peekKey() <= s.step) {
      const id = s.finish.peekVal();
      const key = s.finish.peekKey();
      s.finish.pop();
      if (r.state[id] !== Decoding || r.instanceOf[id] !== s.index || r.finishStep[id] !== key) continue;
      const pool = s.pools[r.poolOf[id]!];
      const ctx = r.prompt[id]! + r.output[id]!;
      pool.decoding--;
      pool.decodingContext -= ctx;
      pool.used -= ctx;
      r.generated[id] = r.output[id]!;
      this.finishRequest(id);
    }
  }

  /** Credits the step's prefill chunks; a finished prefill yields its first token and starts decoding. */
  private advancePrefills(s: InstanceState): void {
    const r = this.req;
    for (let i = 0; i < s.chunkIds.length; i++) {
      const id = s.chunkIds[i]!;
      const c = s.chunkLens[i]!;
      r.prefillLeft[id] = r.prefillLeft[id]! - c;
      r.prefillDone[id] = r.prefillDone[id]! + c;
      if (r.prefillLeft[id]! > 0) continue;
      const pool = s.pools[r.poolOf[id]!];
      const reserved = r.prefillReserve(id);
      r.recompute[id] = 0;
      s.prefilling--;
      this.cachePrompt(s, id);
      if (r.generated[id] === 0) this.firstToken(id);
      if (r.generated[id]! >= r.output[id]!) {
        pool.used -= reserved;
        this.finishRequest(id);
        continue;
      }
      // The first token's KV (reserved at admission) joins the context it decodes from.
      r.state[id] = Decoding;
      this.startDecoding(s, pool, id, r.prompt[id]! + r.generated[id]!);
    }
  }

  /** Drops finished and stale entries from the front of the prefill FIFO, compacting it now and then. */
  private trimPrefillFifo(s: InstanceState): void {
    while (s.prefillHead < s.prefillFifo.length && !this.livePrefill(s, s.prefillHead)) s.prefillHead++;
    if (s.prefillHead > 1024 && s.prefillHead * 2 > s.prefillFifo.length) {
      s.prefillFifo.splice(0, s.prefillHead);
      s.prefillSeq.splice(0, s.prefillHead);
      s.prefillHead = 0;
    }
  }
}
