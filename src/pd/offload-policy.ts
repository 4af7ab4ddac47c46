/**
 * Adrenaline's load-aware offload bound and per-request decision, as the decode instance uses them
 * (HybridAttentionService: capacities in KV blocks, bandwidth in kernel threads). The formula lives
 * in util/offload-bound.ts, shared with the simulator so that its prediction of our engine offloads
 * exactly as the runtime does.
 */
export { type BoundInputs, type OffloadBound, offloadBound, shouldOffload } from "../util/offload-bound.js";
