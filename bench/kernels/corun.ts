// What two busy cores do to each other: a memory-bound pass (a bf16 matrix-vector product over a
// 64 MiB matrix) and a compute-bound one (the same kind of product at 64 tokens over 2 MiB of
// weights), each on one thread alone and then on two threads at once (one per core, separate
// processes' worth of work in two worker threads). The limit is the one-thread rate measured in
// the same run; two fully independent cores would reach 2× it.
//
//   node dist/bench/kernels/corun.js [--seconds 2]
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { loadKernelBackend } from "../../src/kernels/index.js";
import { cpuModel } from "../common/cpu-model.js";
import { benchArgs } from "../common/flags.js";
import { writeResults } from "../common/results.js";

type Kind = "stream" | "compute";

/** One thread's rate on `kind` for `seconds`: GB/s of weights read, or GFLOP/s. */
function rate(kind: Kind, seconds: number): number {
  const b = loadKernelBackend({ backend: "native", threads: 1 });
  const rows = kind === "stream" ? 8192 : 256;
  const cols = 4096;
  const tokens = kind === "stream" ? 1 : 64;
  const w = b.prepareWeight({
    name: "w",
    dtype: "bf16",
    shape: [rows, cols],
    data: new Uint16Array(rows * cols).fill(0x3c00),
  });
  const x = new Float32Array(cols * tokens).fill(1);
  const out = new Float32Array(rows * tokens);
  for (let i = 0; i < 3; i++) b.matmul(out, x, w, tokens);
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < seconds * 1000) {
    b.matmul(out, x, w, tokens);
    n++;
  }
  const s = (performance.now() - t0) / 1000;
  return kind === "stream" ? (n * rows * cols * 2) / s / 1e9 : (n * rows * cols * tokens * 2) / s / 1e9;
}

if (!isMainThread) {
  const { kind, seconds } = workerData as { kind: Kind; seconds: number };
  parentPort!.postMessage(rate(kind, seconds));
} else {
  const { values } = benchArgs({ options: { seconds: { type: "string", default: "2" } } });
  const seconds = Number(values.seconds);
  if (!(seconds > 0)) throw new Error(`--seconds must be positive, got ${values.seconds}`);
  const run = (n: number, kind: Kind) =>
    Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<number>((resolve, reject) => {
            const w = new Worker(new URL(import.meta.url), { workerData: { kind, seconds } });
            w.once("message", resolve);
            w.once("error", reject);
          }),
      ),
    );
  const rows = [];
  console.log(
    `${cpuModel()}; each thread one kernel thread (${loadKernelBackend({ backend: "native", threads: 1 }).describe()})`,
  );
  console.log("| pass | one thread alone | two at once (each) | two at once (sum) | sum / alone |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const kind of ["stream", "compute"] as const) {
    const [alone] = await run(1, kind);
    const two = await run(2, kind);
    const sum = two[0]! + two[1]!;
    const unit = kind === "stream" ? "GB/s" : "GFLOP/s";
    rows.push({ kind, unit, alone: alone!, two, sum, ratio: sum / alone! });
    console.log(
      `| ${kind} (${unit}) | ${alone!.toFixed(1)} | ${two.map((v) => v.toFixed(1)).join(" + ")} | ${sum.toFixed(1)} | ${(sum / alone!).toFixed(2)}× |`,
    );
  }
  writeResults("kernels-corun.json", { cpu: cpuModel(), seconds, rows });
}
