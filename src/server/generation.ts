import type { EngineClient, GenerateRequest, TokenEvent } from "../engine/api.js";
import type { ServerMetrics } from "./metrics.js";

/** One event of one choice (a request with n > 1, or several prompts, runs several choices). */
export interface ChoiceEvent {
  readonly index: number;
  readonly event: TokenEvent;
}

interface Choice {
  readonly index: number;
  readonly iterator: AsyncIterator<TokenEvent>;
  readonly timer: RequestTimer;
  first: TokenEvent | null;
}

/**
 * Runs the engine requests behind one HTTP request: starts every choice, waits for each one's
 * first event (so admission errors such as a full queue surface before any response is sent),
 * then yields the choices' events interleaved as they arrive. `abort()` cancels them all: the
 * client went away, or one choice failed. Each choice gets an AbortController of its own, so each
 * signal carries the one listener its engine request adds: a shared signal would carry one per
 * choice (n up to 16, times up to 64 prompts) and set off a MaxListenersExceededWarning past 10.
 */
export class Generation {
  private readonly controllers: AbortController[] = [];
  private aborted = false;
  private readonly choices: Choice[] = [];

  constructor(
    private readonly engine: EngineClient,
    private readonly requests: readonly GenerateRequest[],
    private readonly metrics: ServerMetrics,
    private readonly arrivalMs: number,
  ) {}

  /** Throws the first admission error (after cancelling the other choices). */
  async start(): Promise<void> {
    try {
      for (let i = 0; i < this.requests.length; i++) {
        const controller = new AbortController();
        if (this.aborted) controller.abort();
        this.controllers.push(controller);
        const iterable = this.engine.generate(this.requests[i]!, controller.signal);
        const timer = new RequestTimer(this.metrics, this.arrivalMs);
        this.choices.push({ index: i, iterator: iterable[Symbol.asyncIterator](), timer, first: null });
      }
      const firsts = await Promise.all(this.choices.map((c) => c.iterator.next()));
      for (let i = 0; i < firsts.length; i++) {
        const r = firsts[i]!;
        if (r.done) throw new Error(`engine ended request ${this.requests[i]!.id} without a final event`);
        this.choices[i]!.first = r.value;
      }
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** Cancels every choice still running (their KV is freed by the engine). */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    for (const c of this.controllers) c.abort();
    for (const c of this.choices) c.timer.onAbort();
  }

  /** Events of all choices, interleaved in arrival order; ends when every choice has finished. */
  async *events(): AsyncGenerator<ChoiceEvent> {
    const pending = new Map<number, Promise<{ choice: Choice; result: IteratorResult<TokenEvent> }>>();
    const pull = (choice: Choice) => {
      const next = choice.iterator.next().then((result) => ({ choice, result }));
      // If the consumer stops early (client gone) nobody awaits this; a late rejection must not crash.
      next.catch(() => {});
      pending.set(choice.index, next);
    };
    for (const choice of this.choices) {
      const first = choice.first!;
      choice.timer.onEvent(first);
      yield { index: choice.index, event: first };
      if (!first.finished) pull(choice);
    }
    while (pending.size > 0) {
      const { choice, result } = await Promise.race(pending.values());
      pending.delete(choice.index);
      if (result.done)
        throw new Error(`engine ended request ${this.requests[choice.index]!.id} without a final event`);
      choice.timer.onEvent(result.value);
      yield { index: choice.index, event: result.value };
      if (!result.value.finished) pull(choice);
    }
  }
}

/** Per-choice latency bookkeeping feeding the server-side histograms. */
class RequestTimer {
  private lastTokenMs = -1;
  private done = false;

  constructor(
    private readonly metrics: ServerMetrics,
    private readonly arrivalMs: number,
  ) {}

  onAbort(): void {
    if (this.done) return;
    this.done = true;
    this.metrics.finished.inc({ finish_reason: "abort" });
  }

  onEvent(event: TokenEvent): void {
    if (this.done) return;
    const now = performance.now();
    const k = event.tokenIds.length;
    // The engine reports how long the request waited for its first scheduling on its first event.
    if (event.queueTime !== undefined) this.metrics.queueTime.observe(event.queueTime);
    if (k > 0) {
      if (this.lastTokenMs < 0) {
        this.metrics.ttft.observe((now - this.arrivalMs) / 1000);
        // Tokens that arrived together with the first share its arrival: no inter-token gap.
      } else {
        const gap = (now - this.lastTokenMs) / 1000 / k;
        for (let i = 0; i < k; i++) this.metrics.itl.observe(gap);
      }
      this.lastTokenMs = now;
    }
    if (event.finished) {
      this.done = true;
      this.metrics.e2e.observe((now - this.arrivalMs) / 1000);
      this.metrics.finished.inc({ finish_reason: event.finishReason ?? "stop" });
    }
  }
}
