import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (this file runs from dist/bench/common). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
/** Where benchmarks write their JSON (gitignored). */
export const RESULTS_DIR = path.join(REPO_ROOT, "bench", "results");

/**
 * Writes `data` as JSON to bench/results/<name> (or to `name` itself where it is an absolute path,
 * as a user's `--out /tmp/x.json` means), prints and returns the path written.
 */
export function writeResults(name: string, data: unknown): string {
  const file = path.isAbsolute(name) ? name : path.join(RESULTS_DIR, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  console.log(`wrote ${path.isAbsolute(name) ? file : path.relative(REPO_ROOT, file)}`);
  return file;
}

/** Seconds one call of fn takes. */
export function timeOnce(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Seconds the fastest of `reps` calls of fn takes. */
export function bestTime(reps: number, fn: () => void): number {
  return bestAlternating(reps, fn)[0]!;
}

/**
 * The fastest of `reps` timings of each of `fns`, in seconds, the calls taking turns: a figure
 * and the limit it is stated against see the same load on a shared host.
 */
export function bestAlternating(reps: number, ...fns: (() => void)[]): number[] {
  const best = fns.map(() => Number.POSITIVE_INFINITY);
  for (let i = 0; i < reps; i++)
    for (let f = 0; f < fns.length; f++) best[f] = Math.min(best[f]!, timeOnce(fns[f]!));
  return best;
}
