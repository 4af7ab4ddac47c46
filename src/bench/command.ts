import { type Command, InvalidArgumentError, Option } from "commander";
import { sharedDataPath } from "../util/shared-data.js";
import { DATASET_NAMES, type DatasetName, DEFAULT_DATASET_FILES } from "./datasets.js";
import { parseSlo } from "./metrics.js";
import { benchServe } from "./runner.js";

interface BenchServeFlags {
  baseUrl: string;
  apiKey?: string;
  dataset: DatasetName;
  datasetPath?: string;
  requestRate?: number;
  burstiness: number;
  traceSpeedup: number;
  numPrompts: number;
  maxConcurrency?: number;
  warmup: number;
  maxContext?: number;
  seed: number;
  goodput?: string[];
  resultJson?: string;
  outputLen: number;
  randomInputLen: number;
  randomOutputLen: number;
  randomRangeRatio: number;
  progress: boolean;
}

function int(flag: string, min: number) {
  return (v: string) => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`${flag} must be an integer ≥ ${min}, got '${v}'`);
    }
    return n;
  };
}

function positive(flag: string) {
  return (v: string) => {
    const n = Number(v);
    if (!(n > 0) || !Number.isFinite(n))
      throw new InvalidArgumentError(`${flag} must be a positive number, got '${v}'`);
    return n;
  };
}

function rate(v: string): number {
  if (v === "inf") return Number.POSITIVE_INFINITY;
  return positive("--request-rate")(v);
}

/** Adds `lamina bench serve` (a `bench` command other benchmarks may share). */
export function registerBenchCommand(program: Command): Command {
  const bench =
    program.commands.find((c) => c.name() === "bench") ?? program.command("bench").description("benchmarks");
  bench
    .command("serve")
    .description("replay a trace or prompt set against a running OpenAI-compatible server and measure it")
    .requiredOption("--base-url <url>", "server address, e.g. http://127.0.0.1:8000")
    .addOption(
      new Option("--dataset <name>", "what to replay").choices([...DATASET_NAMES]).makeOptionMandatory(),
    )
    .option("--dataset-path <path>", "dataset file (default: the copy in the shared data directory)")
    .option("--request-rate <r>", "requests per second, or inf (default: trace timestamps, else inf)", rate)
    .option(
      "--burstiness <k>",
      "gamma shape of inter-arrival gaps (1 = Poisson)",
      positive("--burstiness"),
      1,
    )
    .option(
      "--trace-speedup <x>",
      "divide trace timestamps by x when replaying them",
      positive("--trace-speedup"),
      1,
    )
    .option("--num-prompts <n>", "requests to send", int("--num-prompts", 1), 200)
    .option("--max-concurrency <c>", "most requests in flight at once", int("--max-concurrency", 1))
    .option("--warmup <n>", "untimed requests sent first", int("--warmup", 0), 0)
    .option(
      "--max-context <n>",
      "clamp prompt+output tokens (also clamped to the model's context)",
      int("--max-context", 2),
    )
    .option("--seed <s>", "seed for sampling requests and arrivals", int("--seed", 0), 0)
    .option("--goodput <slo...>", "SLOs in ms: ttft:MS tpot:MS e2el:MS")
    .option("--result-json <file>", "write the full results here")
    .option(
      "--output-len <n>",
      "output tokens per ShareGPT request (the files hold no replies)",
      int("--output-len", 1),
      128,
    )
    .option("--random-input-len <n>", "random dataset: mean prompt tokens", int("--random-input-len", 1), 256)
    .option(
      "--random-output-len <n>",
      "random dataset: mean output tokens",
      int("--random-output-len", 1),
      64,
    )
    .option("--random-range-ratio <r>", "random dataset: lengths within ±r of the mean", Number, 0)
    .option("--api-key <key>", "bearer key for the server (default: $LAMINA_API_KEY)")
    .option("--no-progress", "no progress bar")
    .action(async (f: BenchServeFlags) => {
      if (!(f.randomRangeRatio >= 0 && f.randomRangeRatio < 1)) {
        throw new InvalidArgumentError(`--random-range-ratio must be in [0, 1), got ${f.randomRangeRatio}`);
      }
      const datasetPath =
        f.datasetPath ??
        (f.dataset === "random" ? undefined : sharedDataPath(...DEFAULT_DATASET_FILES[f.dataset]));
      const result = await benchServe({
        baseUrl: f.baseUrl,
        apiKey: f.apiKey ?? process.env.LAMINA_API_KEY,
        dataset: f.dataset,
        datasetPath,
        requestRate: f.requestRate,
        burstiness: f.burstiness,
        traceSpeedup: f.traceSpeedup,
        numPrompts: f.numPrompts,
        maxConcurrency: f.maxConcurrency,
        warmup: f.warmup,
        maxContext: f.maxContext,
        seed: f.seed,
        slo: f.goodput ? parseSlo(f.goodput) : null,
        outputLen: f.outputLen,
        random: { inputLen: f.randomInputLen, outputLen: f.randomOutputLen, rangeRatio: f.randomRangeRatio },
        resultJson: f.resultJson,
        progress: f.progress && process.stderr.isTTY === true,
      });
      process.stdout.write(`${result.report}\n`);
      if (result.metrics.completed === 0) process.exitCode = 1;
    });
  return bench;
}
