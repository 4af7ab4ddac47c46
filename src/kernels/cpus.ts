import { loadNativeAddon } from "./native-addon.js";

// The CPUs of this process, through the kernel addon (Node has no call for them): which it may
// run on, and binding all of its threads to some (placement/core-binding.ts plans which).

/** "0-3,6,8-9": a CPU list as Linux writes one. */
export function formatCpuList(cpus: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < cpus.length; ) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j]! + 1) j++;
    parts.push(j > i ? `${cpus[i]}-${cpus[j]}` : `${cpus[i]}`);
    i = j + 1;
  }
  return parts.join(",");
}

/** Parses a CPU list ("1", "0-3,6"): ascending, without repeats; throws a RangeError naming the fault. */
export function parseCpuList(text: string): number[] {
  const set = new Set<number>();
  for (const part of text.split(",")) {
    const m = /^\s*(\d{1,4})\s*(?:-\s*(\d{1,4})\s*)?$/.exec(part);
    if (!m) throw new RangeError(`"${part.trim()}" is not a CPU number or range (e.g. 1 or 0-3)`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new RangeError(`the range ${a}-${b} runs backwards`);
    for (let c = a; c <= b; c++) set.add(c);
  }
  return [...set].sort((x, y) => x - y);
}

/** The CPUs this process may run on, ascending ([] where the kernel addon or the OS cannot say). */
export function allowedCpus(): number[] {
  try {
    const cpus = loadNativeAddon().addon.allowedCpus();
    if (cpus.length > 0) return cpus;
  } catch {
    /* no addon: fall through */
  }
  return [];
}

/**
 * How long the data-plane waits of a process bound to cores of its own (either end of the
 * exchange) spin on their core alone before offering it to other threads, against 20 µs unbound:
 * with the other side of each hand-off on cores of its own, a yield only hands the core to this
 * process's HTTP thread and delays the hand-off (docs/BENCHMARKS.md, "Cores of their own for
 * attention workers").
 */
export const BOUND_PURE_SPIN_US = 50;

/**
 * Binds every thread of this process to `cpus` and lets its data-plane waits spin alone for
 * BOUND_PURE_SPIN_US; returns the number of threads bound. Throws a RangeError naming the CPUs this
 * process may not use (a cgroup's cpuset, CPUs offline): where none of them is usable nothing
 * moved; where some are, the threads stay on those.
 */
export function bindThisProcess(cpus: readonly number[]): number {
  if (cpus.length === 0) throw new RangeError("no CPUs to bind to");
  const addon = loadNativeAddon().addon;
  const list = formatCpuList(cpus);
  let bound: number;
  try {
    bound = addon.bindProcessToCpus([...cpus]);
  } catch (e) {
    throw new RangeError(
      `cannot bind to CPUs ${list}: ${(e as Error).message.replace(/^bindProcessToCpus: /, "")}`,
    );
  }
  // The OS keeps the usable part of a set silently: what is missing is read back.
  const now = addon.allowedCpus();
  const missing = cpus.filter((c) => !now.includes(c));
  if (now.length > 0 && missing.length > 0)
    throw new RangeError(
      `cannot bind to CPUs ${list}: ${formatCpuList(missing)} not available to this process (its threads are on ${formatCpuList(now)})`,
    );
  addon.setPureSpin(BOUND_PURE_SPIN_US);
  return bound;
}
