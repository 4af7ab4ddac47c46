/**
 * Cores for locally spawned attention workers. A worker's data-plane loop and the engine thread
 * hand every layer to each other; where the scheduler is free to put the server's threads (the
 * engine's, its kernel pool's, the HTTP loop's) on the worker's core, a hand-off waits for that
 * core to come back. Binding gives each worker cores of its own and keeps the server's threads on
 * the rest (docs/BENCHMARKS.md, "Cores of their own for attention workers").
 */
export interface CoreBinding {
  /** CPUs of this process: the model side, its kernel pool and the HTTP loop. */
  readonly model: readonly number[];
  /** CPUs of each spawned attention worker, in spawn order. */
  readonly workers: readonly (readonly number[])[];
}

/**
 * How `allowed` (ascending) is split: each worker `workerThreads` cores from the end, the model side
 * the rest; a string says why there is no binding (too few cores, or a `--threads` the rest cannot hold).
 */
export function planCoreBinding(
  allowed: readonly number[],
  workers: number,
  workerThreads: number,
  modelThreads?: number,
): CoreBinding | string {
  if (workers < 1) return "no attention worker is spawned here";
  const need = workers * workerThreads;
  const left = allowed.length - need;
  if (left < 1)
    return `${allowed.length} CPU${allowed.length === 1 ? "" : "s"} cannot give ${workers} attention worker${workers === 1 ? "" : "s"} ${workerThreads} each and keep one for the model side`;
  if (modelThreads !== undefined && modelThreads > left)
    return `--threads ${modelThreads} asks for more than the ${left} CPU${left === 1 ? "" : "s"} the attention workers leave`;
  const model = allowed.slice(0, left);
  const ws: number[][] = [];
  for (let i = 0; i < workers; i++)
    ws.push(allowed.slice(left + i * workerThreads, left + (i + 1) * workerThreads));
  return { model, workers: ws };
}
