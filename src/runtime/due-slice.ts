import { replicaOf } from "../util/rotation.js";
import { B } from "./model-plane.js";

/**
 * The words of a micro-batch a model worker reads to find the slice it runs next, in this order:
 * the step, the slice, then how the micro-batch's steps ended. The writers of a step (the front
 * end launching it; over TCP, the frames that carry it to each replica's copy, plane-sync.ts)
 * store in the opposite order: how the last step ended, then sliceDone, then the new stepSeq.
 * A reader that sees a new slice beside the old step number (a frame landed between its first two
 * reads) therefore also sees that the old step ended, and runs nothing; it never runs the new
 * step's slice under the old step's number (whose frames every other copy would drop as stale,
 * stalling the micro-batch). Over TCP a replica's own logitsSeq is stale for steps whose last slice
 * ran elsewhere, so the writers carry the end along.
 */
export const DUE_READS = [B.stepSeq, B.sliceDone, B.logitsSeq, B.failedSeq] as const;

/**
 * From the words as read (`seen`, in DUE_READS order): the slice of micro-batch j that `replica`
 * of `replicas` runs now, or -1 (the step ended, or the slice is another replica's).
 */
export function dueSlice(seen: ArrayLike<number>, j: number, replicas: number, replica: number): number {
  const seq = seen[0]!;
  const k = seen[1]!;
  if (seq === seen[2] || seq === seen[3]) return -1;
  return replicaOf(j, k, replicas) === replica ? k : -1;
}
