import type { BenchRequest } from "./datasets.js";
import { BenchRng } from "./rng.js";

/**
 * When each request is sent, in seconds from the start of the run.
 * - rate: Infinity sends everything at once.
 * - rate R with burstiness K: gaps drawn from Gamma(K, 1/(R·K)) — mean 1/R; K = 1 is a Poisson
 *   process, K < 1 burstier, K > 1 more regular (as vLLM's `bench serve` does).
 * - trace: the requests' own timestamps divided by `speedup` (a trace without timestamps is an error).
 */
export type ArrivalProcess =
  | { readonly kind: "rate"; readonly rate: number; readonly burstiness: number }
  | { readonly kind: "trace"; readonly speedup: number };

export function arrivalTimes(
  requests: readonly BenchRequest[],
  process: ArrivalProcess,
  seed: number,
): number[] {
  if (process.kind === "trace") {
    if (!(process.speedup > 0)) throw new Error(`trace speedup must be positive, got ${process.speedup}`);
    const first = requests[0]?.timestamp ?? 0;
    return requests.map((r, i) => {
      if (r.timestamp === undefined)
        throw new Error(`request ${i} has no timestamp: this dataset cannot be replayed in time`);
      return (r.timestamp - first) / process.speedup;
    });
  }
  const { rate, burstiness } = process;
  if (!(rate > 0)) throw new Error(`request rate must be positive, got ${rate}`);
  if (!(burstiness > 0)) throw new Error(`burstiness must be positive, got ${burstiness}`);
  if (rate === Number.POSITIVE_INFINITY) return requests.map(() => 0);
  const rng = new BenchRng(seed ^ 0x5eed);
  const scale = 1 / (rate * burstiness);
  const out: number[] = [];
  let t = 0;
  for (let i = 0; i < requests.length; i++) {
    out.push(t);
    t += rng.gamma(burstiness, scale);
  }
  return out;
}
