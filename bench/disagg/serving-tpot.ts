// Serving with one attention worker against in-process attention: `lamina serve` on stories260K,
// once with `--attention-workers 0` and once with `--attention-workers 1` (the native data plane),
// alternating, each driven by `lamina bench serve` with the first requests of the Azure
// conversation trace at the trace's own timestamps. The limit is the in-process run beside it:
// median TPOT and TTFT with the worker over those in-process, per repetition and as the median of
// the repetitions' ratios; beside them the inter-token gaps' median, p90 and p99 (the medians of
// the two placements agree; their tails are where TPOT parts).
//
//   node dist/bench/disagg/serving-tpot.js [--reps 3] [--prompts 200] [--dataset azure-conv]
//       [--extra "<more serve flags>"] [--worker-extra "<serve flags for the worker run only>"]
//
// Prints a table and writes bench/results/serving-tpot.json.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import { scrapeMetrics } from "../../src/bench/server-metrics.js";
import { median } from "../../src/bench/stats.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { benchArgs, intFlag } from "../common/flags.js";
import { REPO_ROOT, writeResults } from "../common/results.js";

const { values } = benchArgs({
  options: {
    reps: { type: "string", default: "3" },
    prompts: { type: "string", default: "200" },
    dataset: { type: "string", default: "azure-conv" },
    extra: { type: "string", default: "" },
    "worker-extra": { type: "string", default: "" },
  },
});
const reps = intFlag(values.reps, "reps");
const prompts = intFlag(values.prompts, "prompts");
const BIN = path.join(REPO_ROOT, "bin", "lamina.js");
const MODEL = path.join(sharedDataPath("models", "stories260K"), "stories260K.bin");
const extra = values.extra.split(/\s+/).filter((a) => a.length > 0);
const workerExtra = values["worker-extra"].split(/\s+/).filter((a) => a.length > 0);

interface Run {
  attentionWorkers: number;
  tpotMedianMs: number;
  ttftMedianMs: number;
  itlMedianMs: number;
  /** The inter-token gaps' tail: where the placements differ (their medians agree). */
  itlP90Ms: number;
  itlP99Ms: number;
  completed: number;
  failed: number;
  outputTokPerS: number;
  /** The engine's step breakdown from /metrics at the end of the run (seconds, totals). */
  steps: number;
  modelSeconds: number;
  attentionSeconds: number;
  transportSeconds: number;
  pollSeconds: number;
  /** CPU seconds the server and its children (attention workers) used during the run. */
  serverCpuSeconds: number;
  workerCpuSeconds: number;
  /** The server's start-up line on the CPUs of its attention worker ("cores: ..."), or "–". */
  cores: string;
}

/** utime + stime of a process, in seconds (Linux /proc; 0 elsewhere). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

/** The server's children (its spawned attention workers): processes whose parent it is, from /proc. */
function childPids(pid: number): number[] {
  const kids: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return kids;
  }
  for (const e of entries) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) kids.push(Number(e));
    } catch {
      /* gone meanwhile */
    }
  }
  return kids;
}

/** Starts a server in its own process group and resolves with its port once /health answers 200. */
async function startServer(
  attentionWorkers: number,
): Promise<{ child: ChildProcess; port: number; log: () => string }> {
  const args = [
    BIN,
    "serve",
    "--model",
    MODEL,
    "--port",
    "0",
    "--attention-workers",
    String(attentionWorkers),
    // One token a step: the per-layer exchange's cost per token is what is compared.
    "--speculative-tokens",
    "0",
  ];
  const child = spawn(process.execPath, [...args, ...extra, ...(attentionWorkers > 0 ? workerExtra : [])], {
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => {
      log += d;
      const m = /listening on http:\/\/[^:]+:(\d+)/.exec(log);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code) => reject(new Error(`lamina serve exited (${code}):\n${log}`)));
  });
  for (let i = 0; i < 600; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { child, port, log: () => log };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stopServer(child);
  throw new Error(`lamina serve did not become ready:\n${log}`);
}

/**
 * Stops the server as a user would (SIGTERM: it drains, stops its workers and removes its segments),
 * then kills whatever of its process group is left after 10 s.
 */
async function stopServer(child: ChildProcess): Promise<void> {
  const group = (signal: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, signal);
    } catch {
      /* already gone */
    }
  };
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once("exit", r));
    group("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  }
  group("SIGKILL");
}

async function benchServe(port: number, out: string): Promise<void> {
  const args = [BIN, "bench", "serve", "--base-url", `http://127.0.0.1:${port}`, "--dataset", values.dataset];
  args.push(
    "--num-prompts",
    String(prompts),
    "--max-concurrency",
    "64",
    "--warmup",
    "4",
    "--result-json",
    out,
  );
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "inherit"] });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`lamina bench serve exited with ${code}`);
}

async function run(attentionWorkers: number, dir: string): Promise<Run> {
  const { child, port, log } = await startServer(attentionWorkers);
  try {
    const out = path.join(dir, `run-${attentionWorkers}-${Date.now()}.json`);
    const kids = childPids(child.pid!);
    const cpu0 = cpuSeconds(child.pid!);
    const kids0 = kids.reduce((a, k) => a + cpuSeconds(k), 0);
    await benchServe(port, out);
    const serverCpuSeconds = cpuSeconds(child.pid!) - cpu0;
    const workerCpuSeconds = kids.reduce((a, k) => a + cpuSeconds(k), 0) - kids0;
    const scrape = await scrapeMetrics(`http://127.0.0.1:${port}`);
    const metric = (name: string) => scrape?.get(name) ?? 0;
    const r = JSON.parse(readFileSync(out, "utf8"));
    return {
      steps: metric("lamina_steps_total"),
      modelSeconds: metric("lamina_step_model_seconds_total"),
      attentionSeconds: metric("lamina_step_attention_seconds_total"),
      transportSeconds: metric("lamina_step_transport_seconds_total"),
      pollSeconds: metric("lamina_transport_poll_seconds_total"),
      serverCpuSeconds,
      workerCpuSeconds,
      cores: (/cores: (.*)/.exec(log())?.[1] ?? "–").replace(/ \(--no-core-binding.*$/, ""),
      attentionWorkers,
      tpotMedianMs: r.tpot_ms.median,
      ttftMedianMs: r.ttft_ms.median,
      itlMedianMs: r.itl_ms.median,
      itlP90Ms: r.itl_ms.p90,
      itlP99Ms: r.itl_ms.p99,
      completed: r.completed,
      failed: r.failed,
      outputTokPerS: r.output_throughput,
    };
  } finally {
    await stopServer(child);
  }
}

const dir = mkdtempSync(path.join(tmpdir(), "lamina-serving-tpot-"));
const pairs: { inProcess: Run; worker: Run }[] = [];
try {
  for (let r = 0; r < reps; r++) {
    // The order alternates, so a host that drifts during the run favours neither side.
    const order = r % 2 === 0 ? [0, 1] : [1, 0];
    const got: Run[] = [];
    for (const n of order) {
      got.push(await run(n, dir));
      console.error(
        `rep ${r + 1}: --attention-workers ${n}: median TPOT ${got.at(-1)!.tpotMedianMs.toFixed(3)} ms`,
      );
    }
    pairs.push({
      inProcess: got.find((g) => g.attentionWorkers === 0)!,
      worker: got.find((g) => g.attentionWorkers === 1)!,
    });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

console.log(
  `\nCPU: ${cpus()[0]?.model ?? "?"}, ${cpus().length} cores; stories260K, ${values.dataset} first ${prompts} requests at their timestamps`,
);
console.log(
  "| rep | TPOT in-process ms | TPOT 1 worker ms | × | TTFT in-process ms | TTFT 1 worker ms | × | completed |",
);
console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
pairs.forEach((p, i) => {
  const a = p.inProcess;
  const b = p.worker;
  console.log(
    `| ${i + 1} | ${a.tpotMedianMs.toFixed(3)} | ${b.tpotMedianMs.toFixed(3)} | ${(b.tpotMedianMs / a.tpotMedianMs).toFixed(2)} | ${a.ttftMedianMs.toFixed(1)} | ${b.ttftMedianMs.toFixed(1)} | ${(b.ttftMedianMs / a.ttftMedianMs).toFixed(2)} | ${a.completed}/${b.completed} |`,
  );
});
console.log(
  "\n| rep | placement | ITL median ms | ITL p90 ms | ITL p99 ms |\n| ---: | --- | ---: | ---: | ---: |",
);
pairs.forEach((p, i) => {
  for (const [name, r] of [
    ["in-process", p.inProcess],
    ["1 worker", p.worker],
  ] as const)
    console.log(
      `| ${i + 1} | ${name} | ${r.itlMedianMs.toFixed(3)} | ${r.itlP90Ms.toFixed(3)} | ${r.itlP99Ms.toFixed(2)} |`,
    );
});
console.log(
  "\n| rep | placement | steps | model µs/step | attention µs/step | transport µs/step | polling s | server CPU s | worker CPU s | cores |",
);
console.log("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
pairs.forEach((p, i) => {
  for (const [name, r] of [
    ["in-process", p.inProcess],
    ["1 worker", p.worker],
  ] as const) {
    const per = (x: number) => ((x / Math.max(1, r.steps)) * 1e6).toFixed(0);
    console.log(
      `| ${i + 1} | ${name} | ${r.steps} | ${per(r.modelSeconds)} | ${per(r.attentionSeconds)} | ${per(r.transportSeconds)} | ${r.pollSeconds.toFixed(2)} | ${r.serverCpuSeconds.toFixed(1)} | ${r.workerCpuSeconds.toFixed(1)} | ${r.cores} |`,
    );
  }
});
const tpotRatio = median(pairs.map((p) => p.worker.tpotMedianMs / p.inProcess.tpotMedianMs));
const ttftRatio = median(pairs.map((p) => p.worker.ttftMedianMs / p.inProcess.ttftMedianMs));
console.log(
  `median of the ratios: TPOT ${tpotRatio.toFixed(2)}× in-process (target ≤ 1.3×), TTFT ${ttftRatio.toFixed(2)}×`,
);
writeResults("serving-tpot.json", {
  machine: { cpu: cpus()[0]?.model ?? "?", cores: cpus().length },
  dataset: values.dataset,
  prompts,
  extra,
  workerExtra,
  pairs,
  tpotRatio,
  ttftRatio,
});
