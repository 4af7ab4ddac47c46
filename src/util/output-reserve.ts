/**
 * How much KV a request is admitted with, beyond the tokens it has: a share of the output it may
 * still produce, adapted to how often the cache ran short.
 *
 * Admitting a request as soon as its current tokens fit leaves no room for the running ones to
 * grow; within a few steps one of them cannot, and the most recent arrival (often the one just
 * admitted, its prompt just computed) is preempted by recompute. Under load this feeds itself:
 * preemptions add prefill work, steps slow down, the queue grows, more requests are admitted into
 * the same memory. On the PD benchmark's KV-limited decode instance the replica predicted 19-42
 * preemptions for 24 requests, and a 10% slower step cost 14% of the throughput.
 *
 * So a request is admitted only if its current tokens plus `ratio` × (max_tokens − generated) fit,
 * and that much is reserved for it. The ratio starts at `initial`, falls by `decay` every scheduled
 * micro-batch without a preemption down to `min` (a long calm lets admission fill memory again),
 * and goes back to `initial` at every preemption. Requests whose max_tokens is the rest of the
 * context are then reserved a `min` share of it while the cache is calm.
 *
 * The runtime's scheduler (engine/scheduler.ts) and the simulator's replica of it
 * (sim/replica/scheduler.ts) both use this class, so their admissions cannot drift apart. It lives
 * in util/ because the simulator may import nothing of the runtime.
 */
export interface OutputReserveOptions {
  /** The ratio at start and after each preemption. */
  readonly initial: number;
  /** The lowest ratio a calm period reaches. */
  readonly min: number;
  /** By how much each micro-batch planned without a preemption lowers the ratio. */
  readonly decay: number;
}

/** From 1 to 0.1 over 450 calm micro-batches; see docs/BENCHMARKS.md (scheduling under KV pressure). */
export const DEFAULT_OUTPUT_RESERVE: OutputReserveOptions = { initial: 1, min: 0.1, decay: 0.002 };

/**
 * No room for output: a request is admitted with its current tokens held (a chunked prompt's
 * later chunks included), never adapted. (The scheduler before the reserve held only the first
 * chunk's tokens, so a prompt's later chunks could preempt the requests admitted after it.)
 */
export const NO_OUTPUT_RESERVE: OutputReserveOptions = { initial: 0, min: 0, decay: 0 };

/** The reserves `--output-reserve` and the benchmarks name. */
export const NAMED_OUTPUT_RESERVES: Readonly<Record<string, OutputReserveOptions>> = {
  default: DEFAULT_OUTPUT_RESERVE,
  none: NO_OUTPUT_RESERVE,
};

/** Where admission reserves: the runtime's attention service, or the replica's KV space. */
export interface ReservingKv {
  reserve(seqId: number, tokens: number, ahead?: number): boolean;
}

/** How the start-up log names a reserve: "none", or its ratio's start, floor and step. */
export function describeOutputReserve(o: OutputReserveOptions): string {
  if (o.initial === 0) return "none";
  if (o.decay === 0 || o.min === o.initial) return `${o.initial} of the remaining output`;
  return `${o.initial} of the remaining output after a preemption, falling by ${o.decay} a micro-batch to ${o.min}`;
}

export function checkOutputReserve(o: OutputReserveOptions): OutputReserveOptions {
  const unit = (x: number) => Number.isFinite(x) && x >= 0 && x <= 1;
  if (!unit(o.initial) || !unit(o.min) || !unit(o.decay) || o.min > o.initial)
    throw new Error(
      `output reserve: need 0 <= min <= initial <= 1 and 0 <= decay <= 1 (got initial ${o.initial}, min ${o.min}, decay ${o.decay})`,
    );
  return o;
}

export class OutputReserve {
  private current: number;

  constructor(readonly options: OutputReserveOptions = DEFAULT_OUTPUT_RESERVE) {
    checkOutputReserve(options);
    this.current = options.initial;
  }

  get ratio(): number {
    return this.current;
  }

  /**
   * Tokens to reserve when admitting a sequence that has `length` tokens, of which `computed` have
   * KV and `count` are scheduled now, with `remaining` output tokens allowed: never fewer than the
   * step needs.
   */
  admit(length: number, computed: number, count: number, remaining: number): number {
    return Math.max(computed + count, length + Math.ceil(this.current * Math.max(0, remaining)));
  }

  /**
   * Admits a waiting sequence into `kv`: its tokens up to the step's end and, held ahead of them,
   * the share of its `remaining` output. `alone` (nothing running, so waiting frees no KV): a
   * sequence whose reserve does not fit is admitted with what the step needs, so a request that
   * fits the cache still runs.
   */
  tryAdmit(
    kv: ReservingKv,
    seqId: number,
    length: number,
    computed: number,
    count: number,
    remaining: number,
    alone: boolean,
  ): boolean {
    const need = computed + count;
    const ahead = this.admit(length, computed, count, remaining) - need;
    if (kv.reserve(seqId, need, ahead)) return true;
    return ahead > 0 && alone && kv.reserve(seqId, need);
  }

  /** After planning one micro-batch: `preempted` if it preempted anything. */
  planned(preempted: boolean): void {
    const o = this.options;
    this.current = preempted ? o.initial : Math.max(o.min, this.current - o.decay);
  }
}
