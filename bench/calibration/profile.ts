// Measures this machine's device profile with the project's own kernels, on the shapes of the
// calibration model: GEMM FLOP/s against batch (and the batch-1 weight-streaming rate), decode
// attention KV-read rate against context, the engine's per-layer and per-sequence step overhead,
// and the shared-memory link to an attention worker; each for the whole machine and for the
// model/attention split of a disaggregated run on this host.
//
//   npx tsc -p tsconfig.json && node dist/bench/calibration/profile.js [--dtype bf16|f32] [--quick]
//
// Writes bench/results/calibration-profile.json (the profile plus every sweep point).
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { loadKernelBackend } from "../../src/kernels/index.js";
import type { DType } from "../../src/model/tensor.js";
import { benchArgs } from "../common/flags.js";
import { CACHE_ROOT, PROFILE_FILE, REPO_ROOT } from "./paths.js";
import { FULL_EFFORT, measureProfile, QUICK_EFFORT } from "./profile-run.js";
import { printProfile } from "./report.js";

const { values } = benchArgs({
  options: {
    dtype: { type: "string", default: "bf16" },
    quick: { type: "boolean", default: false },
    out: { type: "string", default: PROFILE_FILE },
  },
});
if (values.dtype !== "bf16" && values.dtype !== "f32")
  throw new Error(`--dtype must be bf16 or f32, got ${values.dtype}`);

const backend = loadKernelBackend({ backend: "native" });
const { profile, details } = await measureProfile(
  backend,
  CACHE_ROOT,
  values.quick ? "quick" : "bench",
  values.dtype as DType,
  values.quick ? QUICK_EFFORT : FULL_EFFORT,
  undefined,
  (l) => console.log(l),
);
printProfile(profile, details);
mkdirSync(path.dirname(values.out), { recursive: true });
writeFileSync(values.out, `${JSON.stringify({ ...profile, details }, null, 2)}\n`);
console.log(`wrote ${path.relative(REPO_ROOT, values.out)}`);
