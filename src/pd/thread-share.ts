import type { KernelBackend } from "../kernels/backend.js";

/**
 * The compute partition of a prefill instance: prefill and its attention executor take turns on
 * one process's kernel thread pool (prefill yields after every layer), each with its own thread
 * count. Every kernel call through a share first sets the pool to that share's threads (a no-op
 * when it already is), so the split holds whichever side runs.
 */
export function threadShare(
  backend: KernelBackend,
  threads: number,
  pool: { current: number },
): KernelBackend {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(backend, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== "function" || prop === "setThreads" || prop === "describe") return value;
      let w = wrapped.get(prop);
      if (!w) {
        const fn = value as (...args: unknown[]) => unknown;
        w = (...args: unknown[]) => {
          if (pool.current !== threads) {
            target.setThreads(threads);
            pool.current = threads;
          }
          return fn.apply(target, args);
        };
        wrapped.set(prop, w);
      }
      return w;
    },
  });
}

/**
 * A prefill instance's split of `cores`: prefill gets `prefillThreads` (default: half, rounded
 * up), the attention executor the rest, at least one.
 */
export function prefillThreadSplit(
  cores: number,
  prefillThreads?: number,
): { prefill: number; attention: number } {
  const prefill = prefillThreads ?? Math.max(1, Math.ceil(cores / 2));
  return { prefill, attention: Math.max(1, cores - prefill) };
}
