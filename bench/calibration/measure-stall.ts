import { median } from "../../src/bench/stats.js";
import type { KernelBackend } from "../../src/kernels/backend.js";
import type { ModelConfig } from "../../src/model/config.js";
import type { DType } from "../../src/model/tensor.js";
import { linearPass } from "./measure-kernels.js";

/** A sustained kernel loop's time against its median pass: what the host takes from a long run. */
export interface StallSample {
  readonly threads: number;
  readonly batch: number;
  readonly passes: number;
  readonly medianS: number;
  readonly meanS: number;
  /** mean / median (≥ 1). */
  readonly factor: number;
}

/**
 * The engine runs for seconds and pays every pass a descheduled thread delays (other processes on
 * the host, a kernel pool waiting for its slowest thread); the profile's sweeps are medians of short
 * bursts and do not see those passes. This runs the model's decode-shaped matrix pass back to back
 * for `seconds` with `threads` kernel threads, as an engine's steps do, and returns its mean time
 * over its median: the factor by which a long run's steps exceed the medians the rates come from.
 */
export function measureStall(
  backend: KernelBackend,
  c: ModelConfig,
  dtype: DType,
  threads: number,
  batch: number,
  seconds: number,
): StallSample {
  if (!(seconds > 0)) throw new Error(`measureStall: seconds must be positive, got ${seconds}`);
  backend.setThreads(threads);
  const { pass } = linearPass(backend, c, dtype, batch);
  pass(batch);
  const times: number[] = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end || times.length < 5) {
    const t0 = performance.now();
    pass(batch);
    times.push((performance.now() - t0) / 1000);
  }
  const medianS = median(times);
  const meanS = times.reduce((a, t) => a + t, 0) / times.length;
  return { threads, batch, passes: times.length, medianS, meanS, factor: Math.max(1, meanS / medianS) };
}

/** Windows the stall is measured in (see measureStallWindows). */
export const STALL_WINDOWS = 3;

/**
 * measureStall over STALL_WINDOWS windows of `seconds` each, and the window with the median factor:
 * one burst of the host's other work in one window (a profile read 1.20 at two threads where the
 * profiles around it read 1.02-1.04) otherwise moved the predictions of the two rounds the profile
 * sits between, which had not seen it (REPRODUCTION.md).
 */
export function measureStallWindows(...args: Parameters<typeof measureStall>): StallSample {
  const samples = Array.from({ length: STALL_WINDOWS }, () => measureStall(...args));
  samples.sort((a, b) => a.factor - b.factor);
  return samples[Math.floor(samples.length / 2)]!;
}
