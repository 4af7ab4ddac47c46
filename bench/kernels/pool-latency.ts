// The kernel pool's cost on a contended machine: a small product (512×256 f32, one token) on
// 2 pool threads, called back to back and after a gap of work on the calling thread, with busy
// threads beside it (one per core but the caller's). The limit is the back-to-back call measured
// in the same run: a call after a gap should cost the same, not the idle pool worker's polling.
//
//   node dist/bench/kernels/pool-latency.js [--busy 0,1,2] [--calls 2000] [--gap-us 200]
import { Worker } from "node:worker_threads";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs, intFlag, intListFlag } from "../common/flags.js";
import { writeResults } from "../common/results.js";

const { values } = benchArgs({
  options: {
    busy: { type: "string", default: "0,1,2" },
    calls: { type: "string", default: "2000" },
    "gap-us": { type: "string", default: "200" },
  },
});
const busyCounts = intListFlag(values.busy, "busy", 0);
const calls = intFlag(values.calls, "calls");
const gapUs = intFlag(values["gap-us"], "gap-us");

const backend = loadKernelBackend({ backend: "native", threads: 2 });
const rows = 512;
const cols = 256;
const w = backend.prepareWeight({
  name: "w",
  dtype: "f32",
  shape: [rows, cols],
  data: new Float32Array(rows * cols).fill(0.01),
});
const x = new Float32Array(cols).fill(1);
const out = new Float32Array(rows);

/** Median and p99 of `calls` products, each after `gap` µs of work on this thread (µs). */
function timeCalls(gap: number): { median: number; p99: number } {
  const t: number[] = [];
  for (let i = 0; i < calls; i++) {
    const until = performance.now() + gap / 1000;
    while (performance.now() < until);
    const t0 = performance.now();
    backend.matmul(out, x, w, 1);
    t.push((performance.now() - t0) * 1000);
  }
  t.sort((a, b) => a - b);
  return { median: t[calls >> 1]!, p99: t[Math.floor(calls * 0.99)]! };
}

const rowsOut = [];
console.log(`${cpuModel()}; ${backend.describe()}; ${rows}×${cols} f32 product, 1 token, ${calls} calls`);
console.log("| busy threads | back to back median µs | after a gap median µs | p99 µs | × back to back |");
console.log("| ---: | ---: | ---: | ---: | ---: |");
for (const busy of busyCounts) {
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const workers = Array.from(
    { length: busy },
    () =>
      new Worker(
        `const { workerData } = require("node:worker_threads");
         const c = new Int32Array(workerData);
         while (Atomics.load(c, 0) === 0) for (let i = 0; i < 1000; i++);`,
        { eval: true, workerData: stop.buffer },
      ),
  );
  await new Promise((r) => setTimeout(r, 100));
  const back = timeCalls(0);
  const gapped = timeCalls(gapUs);
  Atomics.store(stop, 0, 1);
  await Promise.all(workers.map((wk) => wk.terminate()));
  const ratio = gapped.median / back.median;
  rowsOut.push({
    busy,
    backToBackMedianUs: back.median,
    gapMedianUs: gapped.median,
    gapP99Us: gapped.p99,
    ratio,
  });
  console.log(
    `| ${busy} | ${back.median.toFixed(1)} | ${gapped.median.toFixed(1)} | ${gapped.p99.toFixed(1)} | ${ratio.toFixed(2)} |`,
  );
}
writeResults("kernels-pool-latency.json", {
  cpu: cpuModel(),
  kernels: backend.describe(),
  gapUs,
  calls,
  rows: rowsOut,
});
