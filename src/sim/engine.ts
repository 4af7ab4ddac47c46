import { kvBytesPerToken, nonAttentionFlopsPerToken } from "./cost-model.js";
import { MinHeap } from "./heap.js";
import { type DecodeInstanceModel, type Limiter, StepCost, type StepInput } from "./instances.js";
import type { Setup } from "./setup.js";
import { LatencyHistogram } from "./stats.js";
import type { Trace } from "./trace.js";
import type { SimModel } from "./types.js";

/**
 * The discrete-event loop. Time advances by batch steps, not tokens: a step of a decode instance
 * gives every running request one token, so per-step work is O(admissions + completions), and
 * per-token quantities (KV growth, token counts, TBT samples) are updated in aggregate.
 */

const QUEUED = 1;
const PREFILLING = 2;
const DECODING = 3;
const DONE = 4;
const REJECTED = 5;

const EV_STEP_END = 0;
const EV_PREFILL_DONE = 1;
const EV_READY = 2;
const EV_START = 3;
const SHIFT = 1 << 24;

const LIMITERS: readonly Limiter[] = [
  "model-compute",
  "model-bandwidth",
  "attention-bandwidth",
  "network",
  "latency",
  "prefill",
];

/** A FIFO of request ids with a front stack for preempted requests (they resume first). */
class RequestQueue {
  private items: number[] = [];
  private head = 0;
  private front: number[] = [];
  tokens = 0;

  get length(): number {
    return this.items.length - this.head + this.front.length;
  }
  push(id: number, tokens: number): void {
    this.items.push(id);
    this.tokens += tokens;
  }
  pushFront(id: number, tokens: number): void {
    this.front.push(id);
    this.tokens += tokens;
  }
  peek(): number {
    return this.front.length > 0 ? this.front[this.front.length - 1]! : this.items[this.head]!;
  }
  shift(tokens: number): void {
    this.tokens -= tokens;
    if (this.front.length > 0) this.front.pop();
    else if (++this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

class Pool {
  b = 0;
  ctx = 0;
  used = 0;
  /** Admission order, for choosing the newest request to preempt (stale entries skipped). */
  order: number[] = [];
  constructor(readonly cap: number) {}
}

class InstanceState {
  readonly queue = new RequestQueue();
  readonly pools: Pool[];
  readonly finish = new MinHeap(256);
  readonly prefillFifo: number[] = [];
  /** Admission sequence number of each prefillFifo entry (a re-admitted request leaves a stale entry behind). */
  readonly prefillSeq: number[] = [];
  prefillHead = 0;
  /** Requests admitted and still being prefilled (prefillFifo also holds stale entries). */
  prefilling = 0;
  busy = false;
  startPending = false;
  step = 0;
  dt = 0;
  bStep = 0;
  chunkIds: number[] = [];
  chunkLens: number[] = [];
  constructor(readonly model: DecodeInstanceModel) {
    this.pools = [new Pool(model.localCapacity), new Pool(model.remoteCapacity)];
  }
  get capacity(): number {
    return this.model.localCapacity + this.model.remoteCapacity;
  }
}

export interface EngineTotals {
  completed: number;
  rejected: number;
  preemptions: number;
  outputTokens: number;
  /** Output tokens the trace asked for (of non-rejected requests): must equal outputTokens. */
  expectedTokens: number;
  makespan: number;
  tbt: LatencyHistogram;
  ttft: LatencyHistogram | null;
  /** Σ batch·dt and Σ dt over decode steps, for the time-weighted average batch. */
  batchTime: number;
  stepTime: number;
  steps: number;
  maxBatch: number;
  /** max over time of KV used / capacity, per pool (must stay ≤ 1). */
  peakKvUtil: number;
  kvUtilTime: number;
  flops: number;
  kvBytesRead: number;
  prefillBusy: number;
  limiterTime: Record<Limiter, number>;
  kvBlockedTime: number;
  batchCapTime: number;
  /** Per-token averages of the step's parts, weighted by decode tokens. */
  partModel: number;
  partAttention: number;
  partNetwork: number;
  partPrefill: number;
  partTotal: number;
  /** Decode tokens produced by steps (the weight of the part averages). */
  decodeTokens: number;
  perRequestFinish: Float64Array;
  /** When the last request left the waiting queues (end of saturation), and the counters then. */
  saturatedUntil: number;
  tokensWhenSaturated: number;
  batchTimeWhenSaturated: number;
  stepTimeWhenSaturated: number;
}

export function runEngine(trace: Trace, setup: Setup, model: SimModel): EngineTotals {
  const n = trace.arrival.length;
  const arrival = trace.arrival;
  const prompt = trace.prompt;
  const output = trace.output;
  const state = new Uint8Array(n);
  const generated = new Int32Array(n);
  const finishStep = new Float64Array(n);
  const recompute = new Uint8Array(n);
  const instOf = new Int32Array(n).fill(-1);
  const poolOf = new Uint8Array(n);
  const prefillLeft = new Int32Array(n);
  const prefillDone = new Int32Array(n);
  const finishTime = new Float64Array(n);
  const admitSeq = new Float64Array(n);
  let seq = 0;
  const insts = setup.instances.map((m) => new InstanceState(m));
  const colocatedPrefill = setup.prefillServers.length === 0 && !setup.decodeOnly;
  const disaggregated = setup.prefillServers.length > 0;
  const events = new MinHeap(1024);
  const cost = new StepCost();
  const input: StepInput = {
    bLocal: 0,
    ctxLocal: 0,
    bRemote: 0,
    ctxRemote: 0,
    prefillTokens: 0,
    prefillWork: 0,
  };
  const flopsPerToken = nonAttentionFlopsPerToken(model);
  const kvb = kvBytesPerToken(model);
  const limiterTime = Object.fromEntries(LIMITERS.map((l) => [l, 0])) as Record<Limiter, number>;
  const t: EngineTotals = {
    completed: 0,
    rejected: 0,
    preemptions: 0,
    outputTokens: 0,
    expectedTokens: 0,
    makespan: 0,
    tbt: new LatencyHistogram(),
    ttft: setup.decodeOnly ? null : new LatencyHistogram(),
    batchTime: 0,
    stepTime: 0,
    steps: 0,
    maxBatch: 0,
    peakKvUtil: 0,
    kvUtilTime: 0,
    flops: 0,
    kvBytesRead: 0,
    prefillBusy: 0,
    limiterTime,
    kvBlockedTime: 0,
    batchCapTime: 0,
    partModel: 0,
    partAttention: 0,
    partNetwork: 0,
    partPrefill: 0,
    partTotal: 0,
    decodeTokens: 0,
    perRequestFinish: finishTime,
    saturatedUntil: 0,
    tokensWhenSaturated: 0,
    batchTimeWhenSaturated: 0,
    stepTimeWhenSaturated: 0,
  };
  // Requests arrived but not yet admitted to a decode instance (prefill queues included).
  let pending = 0;
  const admitted = () => {
    if (--pending === 0 && next >= n) {
      t.saturatedUntil = now;
      t.tokensWhenSaturated = t.outputTokens;
      t.batchTimeWhenSaturated = t.batchTime;
      t.stepTimeWhenSaturated = t.stepTime;
    }
  };
  let now = 0;
  let next = 0;
  // A request that cannot fit even alone in the largest instance would never finish: reject it up front.
  let largest = 0;
  for (const s of insts) {
    largest = Math.max(largest, s.model.localCapacity, s.model.remoteCapacity);
  }

  const finishRequest = (id: number) => {
    state[id] = DONE;
    finishTime[id] = now;
    t.completed++;
    if (now > t.makespan) t.makespan = now;
  };

  const firstToken = (id: number) => {
    generated[id] = 1;
    t.outputTokens++;
    t.ttft?.add(now - arrival[id]!);
  };

  const wake = (s: InstanceState, idx: number) => {
    if (!s.busy && !s.startPending) {
      s.startPending = true;
      events.push(now, EV_START * SHIFT + idx);
    }
  };

  const route = (id: number) => {
    let best = 0;
    let bestLoad = Number.POSITIVE_INFINITY;
    for (let i = 0; i < insts.length; i++) {
      const s = insts[i]!;
      const load = (s.pools[0]!.used + s.pools[1]!.used + s.queue.tokens) / s.capacity;
      if (load < bestLoad) {
        bestLoad = load;
        best = i;
      }
    }
    const s = insts[best]!;
    state[id] = QUEUED;
    instOf[id] = best;
    s.queue.push(id, prompt[id]! + generated[id]!);
    wake(s, best);
  };

  // ---- prefill instances (PD / Adrenaline) ----
  const pfQueue: number[] = [];
  let pfHead = 0;
  const pfBatches: number[][] = setup.prefillServers.map(() => []);
  const pfBusy = new Uint8Array(setup.prefillServers.length);
  const startPrefill = (k: number) => {
    if (pfBusy[k] || pfHead >= pfQueue.length) return;
    const batch = pfBatches[k]!;
    batch.length = 0;
    let tokens = 0;
    let work = 0;
    while (pfHead < pfQueue.length) {
      const id = pfQueue[pfHead]!;
      const p = prompt[id]!;
      if (batch.length > 0 && tokens + p > setup.prefillBatchTokens) break;
      batch.push(id);
      tokens += p;
      work += p * p;
      pfHead++;
    }
    const dt = setup.prefillServers[k]!.time(tokens, work);
    t.prefillBusy += dt;
    pfBusy[k] = 1;
    events.push(now + dt, EV_PREFILL_DONE * SHIFT + k);
  };
  const endPrefill = (k: number) => {
    pfBusy[k] = 0;
    for (const id of pfBatches[k]!) {
      firstToken(id);
      if (output[id]! <= 1) {
        finishRequest(id);
        admitted();
      } else events.push(now + setup.kvTransferTime(prompt[id]!), EV_READY * SHIFT + id);
    }
    startPrefill(k);
  };

  // ---- decode instances ----
  const currentCtx = (s: InstanceState, id: number) => {
    if (state[id] === DECODING) return prompt[id]! + output[id]! - (finishStep[id]! - s.step);
    return prompt[id]! + generated[id]!;
  };

  // KV held by a request being prefilled: its context, plus its first token when it has none yet.
  const reserveOf = (id: number) => prompt[id]! + generated[id]! + (generated[id] === 0 ? 1 : 0);

  const preempt = (s: InstanceState, pool: Pool, poolIdx: number): boolean => {
    while (pool.order.length > 0) {
      const id = pool.order.pop()!;
      if (instOf[id] < 0 || insts[instOf[id]!] !== s || poolOf[id] !== poolIdx) continue;
      if (state[id] === DECODING) {
        const ctx = currentCtx(s, id);
        generated[id] = ctx - prompt[id]!;
        pool.b--;
        pool.ctx -= ctx;
        pool.used -= ctx;
      } else if (state[id] === PREFILLING) {
        pool.used -= reserveOf(id);
        s.prefilling--;
      } else continue;
      state[id] = QUEUED;
      recompute[id] = 1;
      t.preemptions++;
      s.queue.pushFront(id, prompt[id]! + generated[id]!);
      pending++;
      return true;
    }
    return false;
  };

  const admit = (s: InstanceState): void => {
    const local = s.pools[0]!;
    const remote = s.pools[1]!;
    const ratio = s.model.offloadRatio;
    const headroom = setup.kvHeadroomTokens;
    while (s.queue.length > 0) {
      const id = s.queue.peek();
      const ctx = prompt[id]! + generated[id]!;
      const bTotal = local.b + remote.b + s.prefilling;
      if (bTotal >= s.model.maxBatch) {
        s.bStep = -1;
        return;
      }
      let poolIdx = -1;
      const wantRemote = remote.cap > 0 && remote.b + 1 <= ratio * (local.b + remote.b + 1);
      // Keep room for every admitted request to grow a little (vLLM's watermark), or the next steps preempt.
      if (wantRemote && remote.used + ctx + 1 + remote.b * headroom <= remote.cap) poolIdx = 1;
      else if (local.used + ctx + 1 + local.b * headroom <= local.cap) poolIdx = 0;
      // An empty instance takes the request wherever it fits, so a bound on N/M can never stall it.
      if (poolIdx < 0 && bTotal === 0) {
        if (local.used + ctx + 1 <= local.cap) poolIdx = 0;
        else if (remote.used + ctx + 1 <= remote.cap) poolIdx = 1;
      }
      if (poolIdx < 0) {
        s.bStep = -2;
        return;
      }
      s.queue.shift(ctx);
      admitted();
      const pool = s.pools[poolIdx]!;
      poolOf[id] = poolIdx;
      pool.order.push(id);
      if ((generated[id] === 0 && colocatedPrefill) || recompute[id]) {
        pool.used += reserveOf(id);
        state[id] = PREFILLING;
        prefillLeft[id] = ctx;
        prefillDone[id] = 0;
        admitSeq[id] = ++seq;
        s.prefilling++;
        s.prefillFifo.push(id);
        s.prefillSeq.push(seq);
      } else {
        state[id] = DECODING;
        pool.used += ctx;
        pool.b++;
        pool.ctx += ctx;
        finishStep[id] = s.step + output[id]! - generated[id]!;
        s.finish.push(finishStep[id]!, id);
      }
    }
  };

  const compactOrder = (pool: Pool) => {
    if (pool.order.length > 4 * (pool.b + 64)) {
      pool.order = pool.order.filter((id) => state[id] === DECODING || state[id] === PREFILLING);
    }
  };

  const livePrefill = (s: InstanceState, i: number) => {
    const id = s.prefillFifo[i]!;
    return state[id] === PREFILLING && admitSeq[id] === s.prefillSeq[i] && insts[instOf[id]!] === s;
  };

  const startStep = (s: InstanceState, idx: number): void => {
    s.startPending = false;
    s.bStep = 0;
    admit(s);
    const blocked = s.bStep;
    for (let p = 0; p < 2; p++) {
      const pool = s.pools[p]!;
      while (pool.used + pool.b > pool.cap && preempt(s, pool, p)) {}
      compactOrder(pool);
    }
    // Prefill chunks (colocated prompts, or recomputation after preemption).
    s.chunkIds.length = 0;
    s.chunkLens.length = 0;
    let budget = setup.chunkTokens;
    let work = 0;
    let tokens = 0;
    for (let i = s.prefillHead; i < s.prefillFifo.length && budget > 0; i++) {
      const id = s.prefillFifo[i]!;
      if (!livePrefill(s, i)) {
        if (i === s.prefillHead) s.prefillHead++;
        continue;
      }
      const c = Math.min(prefillLeft[id]!, budget);
      s.chunkIds.push(id);
      s.chunkLens.push(c);
      const o = prefillDone[id]!;
      work += 2 * c * (o + c / 2);
      tokens += c;
      budget -= c;
    }
    const local = s.pools[0]!;
    const remote = s.pools[1]!;
    const b = local.b + remote.b;
    if (b === 0 && tokens === 0) {
      s.busy = false;
      return;
    }
    input.bLocal = local.b;
    input.ctxLocal = local.ctx;
    input.bRemote = remote.b;
    input.ctxRemote = remote.ctx;
    input.prefillTokens = tokens;
    input.prefillWork = work;
    s.model.step(input, cost);
    const dt = cost.time;
    s.dt = dt;
    s.bStep = b;
    s.busy = true;
    t.steps++;
    t.stepTime += dt;
    t.batchTime += b * dt;
    if (b > t.maxBatch) t.maxBatch = b;
    t.limiterTime[cost.limiter] += dt;
    if (blocked === -2) t.kvBlockedTime += dt;
    else if (blocked === -1) t.batchCapTime += dt;
    t.kvUtilTime += ((local.used + remote.used) / s.capacity) * dt;
    t.flops += flopsPerToken * (b + tokens);
    t.kvBytesRead += (local.ctx + remote.ctx) * kvb;
    t.partModel += cost.model * b;
    t.partAttention += cost.attention * b;
    t.partNetwork += cost.network * b;
    t.partPrefill += cost.prefill * b;
    t.partTotal += dt * b;
    t.decodeTokens += b;
    events.push(now + dt, EV_STEP_END * SHIFT + idx);
  };

  const endStep = (s: InstanceState, idx: number): void => {
    s.step++;
    let b = 0;
    for (let p = 0; p < 2; p++) {
      const pool = s.pools[p]!;
      b += pool.b;
      pool.ctx += pool.b;
      pool.used += pool.b;
      if (pool.cap > 0 && pool.used / pool.cap > t.peakKvUtil) t.peakKvUtil = pool.used / pool.cap;
    }
    t.outputTokens += b;
    t.tbt.add(s.dt, b);
    while (s.finish.size > 0 && s.finish.peekKey() <= s.step) {
      const id = s.finish.peekVal();
      const key = s.finish.peekKey();
      s.finish.pop();
      if (state[id] !== DECODING || insts[instOf[id]!] !== s || finishStep[id] !== key) continue;
      const pool = s.pools[poolOf[id]!]!;
      const ctx = prompt[id]! + output[id]!;
      pool.b--;
      pool.ctx -= ctx;
      pool.used -= ctx;
      generated[id] = output[id]!;
      finishRequest(id);
    }
    for (let i = 0; i < s.chunkIds.length; i++) {
      const id = s.chunkIds[i]!;
      const c = s.chunkLens[i]!;
      prefillLeft[id] = prefillLeft[id]! - c;
      prefillDone[id] = prefillDone[id]! + c;
      if (prefillLeft[id]! > 0) continue;
      const pool = s.pools[poolOf[id]!]!;
      const reserved = reserveOf(id);
      recompute[id] = 0;
      s.prefilling--;
      if (generated[id] === 0) firstToken(id);
      if (generated[id]! >= output[id]!) {
        pool.used -= reserved;
        finishRequest(id);
        continue;
      }
      // The first token's KV (reserved at admission) joins the context it decodes from.
      state[id] = DECODING;
      const kv = prompt[id]! + generated[id]!;
      pool.b++;
      pool.ctx += kv;
      finishStep[id] = s.step + output[id]! - generated[id]!;
      s.finish.push(finishStep[id]!, id);
    }
    while (s.prefillHead < s.prefillFifo.length && !livePrefill(s, s.prefillHead)) s.prefillHead++;
    if (s.prefillHead > 1024 && s.prefillHead * 2 > s.prefillFifo.length) {
      s.prefillFifo.splice(0, s.prefillHead);
      s.prefillSeq.splice(0, s.prefillHead);
      s.prefillHead = 0;
    }
    startStep(s, idx);
  };

  // ---- main loop ----
  for (;;) {
    const tArr = next < n ? arrival[next]! : Number.POSITIVE_INFINITY;
    const tEv = events.peekKey();
    if (tArr === Number.POSITIVE_INFINITY && tEv === Number.POSITIVE_INFINITY) break;
    if (tArr <= tEv) {
      now = tArr;
      const id = next++;
      if (prompt[id]! + output[id]! + 1 > largest) {
        state[id] = REJECTED;
        t.rejected++;
        continue;
      }
      t.expectedTokens += output[id]!;
      pending++;
      if (disaggregated) {
        pfQueue.push(id);
        for (let k = 0; k < pfBusy.length && pfHead < pfQueue.length; k++) startPrefill(k);
      } else route(id);
      continue;
    }
    now = tEv;
    const code = events.peekVal();
    events.pop();
    const type = Math.floor(code / SHIFT);
    const arg = code % SHIFT;
    if (type === EV_STEP_END) endStep(insts[arg]!, arg);
    else if (type === EV_START) startStep(insts[arg]!, arg);
    else if (type === EV_PREFILL_DONE) endPrefill(arg);
    else route(arg);
  }
  return t;
}
