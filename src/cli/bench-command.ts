import { type Command, Option } from "commander";
import { DATASET_NAMES, type DatasetName, DEFAULT_DATASET_FILES } from "../bench/datasets.js";
import { parseSlo } from "../bench/metrics.js";
import { benchServe } from "../bench/runner.js";
import { sharedDataPath } from "../util/shared-data.js";
import { intArg, named, positiveFloatArg, ratioArg } from "./parse.js";

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
  randomPrefixLen: number;
  progress: boolean;
}

const positiveRate = named("--request-rate", positiveFloatArg);

/** Requests per second, or inf (all at once). */
function requestRateArg(value: string): number {
  return value === "inf" ? Number.POSITIVE_INFINITY : positiveRate(value);
}

/** Adds `lamina bench serve` (a `bench` command other benchmarks may share). */
export function registerBenchCommand(program: Command): Command {
  const bench =
    program.commands.find((c) => c.name() === "bench") ?? program.command("bench").description("benchmarks");
  addBenchServeOptions(
    bench
      .command("serve")
      .description("replay a trace or prompt set against a running OpenAI-compatible server and measure it"),
  ).action(benchServeAction);
  return bench;
}

function addBenchServeOptions(cmd: Command): Command {
  return cmd
    .requiredOption("--base-url <url>", "server address, e.g. http://127.0.0.1:8000")
    .addOption(
      new Option("--dataset <name>", "what to replay").choices([...DATASET_NAMES]).makeOptionMandatory(),
    )
    .option("--dataset-path <path>", "dataset file (default: the copy in the shared data directory)")
    .option(
      "--request-rate <r>",
      "requests per second, or inf (default: trace timestamps, else inf)",
      requestRateArg,
    )
    .option(
      "--burstiness <k>",
      "gamma shape of inter-arrival gaps (1 = Poisson)",
      named("--burstiness", positiveFloatArg),
      1,
    )
    .option(
      "--trace-speedup <x>",
      "divide trace timestamps by x when replaying them",
      named("--trace-speedup", positiveFloatArg),
      1,
    )
    .option("--num-prompts <n>", "requests to send", named("--num-prompts", intArg(1)), 200)
    .option("--max-concurrency <c>", "most requests in flight at once", named("--max-concurrency", intArg(1)))
    .option("--warmup <n>", "untimed requests sent first", named("--warmup", intArg(0)), 0)
    .option(
      "--max-context <n>",
      "clamp prompt+output tokens (also clamped to the model's context)",
      named("--max-context", intArg(2)),
    )
    .option("--seed <s>", "seed for sampling requests and arrivals", named("--seed", intArg(0)), 0)
    .option("--goodput <slo...>", "SLOs in ms: ttft:MS tpot:MS e2el:MS")
    .option("--result-json <file>", "write the full results here")
    .option(
      "--output-len <n>",
      "output tokens per ShareGPT request (the files hold no replies)",
      named("--output-len", intArg(1)),
      128,
    )
    .option(
      "--random-input-len <n>",
      "random dataset: mean prompt tokens",
      named("--random-input-len", intArg(1)),
      256,
    )
    .option(
      "--random-output-len <n>",
      "random dataset: mean output tokens",
      named("--random-output-len", intArg(1)),
      64,
    )
    .option(
      "--random-prefix-len <n>",
      "random dataset: tokens every prompt starts with, before its own (a shared system prompt)",
      named("--random-prefix-len", intArg(0)),
      0,
    )
    .option(
      "--random-range-ratio <r>",
      "random dataset: lengths within ±r of the mean",
      named("--random-range-ratio", ratioArg),
      0,
    )
    .option("--api-key <key>", "bearer key for the server (default: $LAMINA_API_KEY)")
    .option("--no-progress", "no progress bar");
}

async function benchServeAction(f: BenchServeFlags): Promise<void> {
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
    random: {
      inputLen: f.randomInputLen,
      outputLen: f.randomOutputLen,
      rangeRatio: f.randomRangeRatio,
      prefixLen: f.randomPrefixLen,
    },
    resultJson: f.resultJson,
    progress: f.progress && process.stderr.isTTY === true,
  });
  process.stdout.write(`${result.report}\n`);
  if (result.metrics.completed === 0) process.exitCode = 1;
}
