import {
  type Catalog,
  findAccelerator,
  findNetwork,
  loadCatalog,
  resolveModel,
} from "../../src/sim/catalog.js";
import type { Accelerator } from "../../src/sim/types.js";

/**
 * The shipped catalog with a small-memory device, TINY (an A100 with 29 GB), so that KV capacity
 * binds (admission waits, preemption and recomputation run) within a short trace; llama2-7b and a
 * 400G RDMA network, the simulator tests' common setting.
 */
const base = loadCatalog();
export const TINY: Accelerator = {
  ...findAccelerator(base, "A100-80GB"),
  name: "TINY",
  aliases: [],
  memoryBytes: 29e9,
};
export const catalog: Catalog = { ...base, accelerators: [...base.accelerators, TINY] };
export const model = resolveModel(catalog, "llama2-7b");
export const network = findNetwork(catalog, "rdma-400g-fhbn");
