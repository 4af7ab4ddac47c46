/**
 * One engine's timing of a scenario, recorded the same way for both engines: a timestamp per
 * generated token of each sequence. Decode throughput counts only tokens produced after every
 * sequence has its first token (so prompt processing is excluded); prefill is the time to the
 * first token of one long prompt.
 */
export class TokenClock {
  private readonly firstAt: number[];
  private readonly stamps: number[] = [];

  constructor(nSeqs: number) {
    this.firstAt = new Array<number>(nSeqs).fill(Number.NaN);
  }

  record(seq: number, count: number, at: number): void {
    if (Number.isNaN(this.firstAt[seq]!)) this.firstAt[seq] = at;
    for (let i = 0; i < count; i++) this.stamps.push(at);
  }

  /** Aggregate decode tokens/s over all sequences, after the last sequence's first token. */
  decodeTokensPerSecond(): number {
    const start = Math.max(...this.firstAt);
    if (Number.isNaN(start)) throw new Error("a sequence produced no token");
    let n = 0;
    let end = start;
    for (const t of this.stamps) {
      if (t > start) {
        n++;
        end = Math.max(end, t);
      }
    }
    if (n === 0 || end <= start) throw new Error("no decode tokens after the first step");
    return n / ((end - start) / 1000);
  }
}

export interface EngineRunner {
  readonly name: string;
  /** Aggregate decode tokens/s with `prompts.length` sequences generating `tokens` tokens each. */
  decode(prompts: readonly number[][], tokens: number): Promise<number>;
  /** Prompt tokens/s: the time to the first token of one prompt. */
  prefill(prompt: readonly number[]): Promise<number>;
  close(): Promise<void>;
}
