/**
 * Lamina's rotational staggered pipelining, the one rule the runtime (model workers) and the
 * simulator share: n micro-batches over R model replicas, slice k of micro-batch j on replica
 * (j + k) mod R (numbered from 0 here, from 1 in the paper). With R = n − 1 every replica is busy
 * while one micro-batch waits on attention, and a micro-batch's consecutive slices run on
 * consecutive replicas, so its context moves one replica on after every attention.
 */
export function replicaOf(microBatch: number, slice: number, replicas: number): number {
  return (microBatch + slice) % replicas;
}

/** How many of one cycle's slices (every micro-batch's whole forward pass) each replica runs. */
export function slicesPerReplica(microBatches: number, slices: number, replicas: number): number[] {
  const counts = new Array<number>(replicas).fill(0);
  for (let j = 0; j < microBatches; j++)
    for (let k = 0; k < slices; k++) counts[replicaOf(j, k, replicas)]!++;
  return counts;
}

/** The schedule as logs print it: for each micro-batch, the replica of its first slices. */
export function describeRotation(microBatches: number, slices: number, replicas: number): string[] {
  const shown = Math.min(slices, 6);
  const lines = Array.from({ length: microBatches }, (_, j) => {
    const parts = Array.from({ length: shown }, (_, k) => `s${k}→mw${replicaOf(j, k, replicas)}`);
    return `micro-batch ${j}: ${parts.join(" ")}${slices > shown ? " …" : ""}`;
  });
  const counts = slicesPerReplica(microBatches, slices, replicas);
  lines.push(`slices per cycle on each model worker: ${counts.join(", ")}`);
  return lines;
}
