import { writeFileSync } from "node:fs";
import { Presets, SingleBar } from "cli-progress";
import { type ArrivalProcess, arrivalTimes } from "./arrivals.js";
import { type CompletionJob, runCompletion, type ServerTarget } from "./client.js";
import {
  type BenchRequest,
  clampToContext,
  type DatasetName,
  loadDataset,
  type RandomDatasetOptions,
} from "./datasets.js";
import { type BenchmarkMetrics, computeMetrics, type RequestOutcome, type Slo } from "./metrics.js";
import { buildJobs, fetchServedModel } from "./prompts.js";
import { formatReport } from "./report.js";
import { type ServerSide, scrapeMetrics, serverSide } from "./server-metrics.js";

export interface BenchServeOptions {
  readonly baseUrl: string;
  readonly apiKey?: string;
  readonly dataset: DatasetName;
  readonly datasetPath?: string;
  /** undefined: replay the trace's timestamps if it has them, else send all at once. */
  readonly requestRate?: number;
  readonly burstiness: number;
  readonly traceSpeedup: number;
  readonly numPrompts: number;
  readonly maxConcurrency?: number;
  readonly warmup: number;
  /** Clamp prompt + output to this many tokens (and never beyond the served model's context). */
  readonly maxContext?: number;
  readonly seed: number;
  readonly slo: Slo | null;
  readonly outputLen: number;
  readonly random: RandomDatasetOptions;
  readonly resultJson?: string;
  readonly progress: boolean;
  readonly log?: (line: string) => void;
}

export interface BenchServeResult {
  readonly metrics: BenchmarkMetrics;
  /** What the server's /metrics say it did during the run (null without /metrics). */
  readonly server: ServerSide | null;
  readonly outcomes: readonly RequestOutcome[];
  readonly report: string;
  readonly json: Record<string, unknown>;
}

/** Replays a dataset against a running server and measures it (the `lamina bench serve` command). */
export async function benchServe(o: BenchServeOptions): Promise<BenchServeResult> {
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const baseUrl = o.baseUrl.replace(/\/+$/, "").replace(/\/v1$/, "");
  const served = await fetchServedModel(baseUrl, o.apiKey);
  const target: ServerTarget = { baseUrl, model: served.id, apiKey: o.apiKey };
  const context = Math.min(
    o.maxContext ?? Number.POSITIVE_INFINITY,
    served.maxModelLen ?? Number.POSITIVE_INFINITY,
  );
  const fit = (r: BenchRequest) => (Number.isFinite(context) ? clampToContext(r, context) : r);

  const requests = loadDataset(o.dataset, {
    path: o.datasetPath,
    numPrompts: o.numPrompts + o.warmup,
    outputLen: o.outputLen,
    random: o.random,
    seed: o.seed,
  });
  const jobs = await buildJobs(target, requests, fit, o.seed);
  const warmupJobs = jobs.slice(0, o.warmup);
  const timedJobs = jobs.slice(o.warmup);
  const timedRequests = requests.slice(o.warmup);
  const arrival: ArrivalProcess =
    o.requestRate !== undefined || timedRequests[0]?.timestamp === undefined
      ? { kind: "rate", rate: o.requestRate ?? Number.POSITIVE_INFINITY, burstiness: o.burstiness }
      : { kind: "trace", speedup: o.traceSpeedup };
  const arrivals = arrivalTimes(timedRequests, arrival, o.seed);
  const arrivalLabel =
    arrival.kind === "trace"
      ? `trace timestamps ÷ ${arrival.speedup}`
      : Number.isFinite(arrival.rate)
        ? `${arrival.rate} req/s, burstiness ${arrival.burstiness}`
        : "all at once (rate inf)";
  log(
    `model ${served.id} (context ${served.maxModelLen ?? "?"}); ${timedJobs.length} requests from ${o.dataset}; ${arrivalLabel}`,
  );

  for (const job of warmupJobs) {
    const w = await runCompletion(target, { ...job, maxTokens: Math.min(job.maxTokens, 16) });
    if (!w.success) throw new Error(`warm-up request failed: ${w.error}`);
  }

  const bar = o.progress
    ? new SingleBar({ stream: process.stderr, hideCursor: true }, Presets.shades_classic)
    : null;
  const scrapeBefore = await scrapeMetrics(baseUrl, o.apiKey);
  bar?.start(timedJobs.length, 0);
  const outcomes = await dispatch(target, timedJobs, arrivals, o.maxConcurrency, () => bar?.increment());
  bar?.stop();
  const { outcomes: list, durationS } = outcomes;

  const scrapeAfter = scrapeBefore ? await scrapeMetrics(baseUrl, o.apiKey) : null;
  const server: ServerSide | null =
    scrapeBefore && scrapeAfter ? serverSide(scrapeBefore, scrapeAfter, durationS) : null;
  const metrics = computeMetrics(list, durationS, o.slo);
  const header: Record<string, string | number> = {
    Model: served.id,
    Dataset: o.dataset,
    Arrivals: arrivalLabel,
    "Max concurrency": o.maxConcurrency ?? "unlimited",
  };
  const report = formatReport(metrics, header, server);
  const failures = list.filter((x) => !x.success).map((x) => x.error ?? "unknown");
  const json: Record<string, unknown> = {
    date: new Date().toISOString(),
    base_url: baseUrl,
    model_id: served.id,
    max_model_len: served.maxModelLen,
    dataset: o.dataset,
    num_prompts: timedJobs.length,
    request_rate: arrival.kind === "trace" ? "trace" : Number.isFinite(arrival.rate) ? arrival.rate : "inf",
    burstiness: o.burstiness,
    trace_speedup: arrival.kind === "trace" ? arrival.speedup : null,
    max_concurrency: o.maxConcurrency ?? null,
    max_context: Number.isFinite(context) ? context : null,
    seed: o.seed,
    goodput_slo_ms: o.slo,
    ...metrics,
    server,
    input_lens: list.map((x) => x.promptTokens),
    output_lens: list.map((x) => x.outputTokens),
    ttfts: list.map((x) => x.ttft),
    itls: list.map((x) => x.itl),
    e2els: list.map((x) => x.latency),
    errors: failures,
  };
  if (o.resultJson) writeFileSync(o.resultJson, `${JSON.stringify(json, null, 2)}\n`);
  return { metrics, server, outcomes: list, report, json };
}

/**
 * Sends each job at its arrival time (seconds from the start), never more than `maxConcurrency`
 * at once (a job due while the limit is reached waits for a free slot, as in vLLM).
 */
export async function dispatch(
  target: ServerTarget,
  jobs: readonly CompletionJob[],
  arrivals: readonly number[],
  maxConcurrency: number | undefined,
  onDone: () => void,
  send: (target: ServerTarget, job: CompletionJob) => Promise<RequestOutcome> = runCompletion,
): Promise<{ outcomes: RequestOutcome[]; durationS: number }> {
  const limit = maxConcurrency ?? Number.POSITIVE_INFINITY;
  let active = 0;
  const slotWaiters: (() => void)[] = [];
  const outcomes: RequestOutcome[] = new Array(jobs.length);
  const running: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < jobs.length; i++) {
    const due = start + arrivals[i]! * 1000;
    // Timers may fire up to a millisecond early: sleep again until the arrival time has passed.
    for (let wait = due - performance.now(); wait > 0; wait = due - performance.now()) {
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    while (active >= limit) await new Promise<void>((resolve) => slotWaiters.push(resolve));
    active++;
    running.push(
      send(target, jobs[i]!).then((outcome) => {
        outcomes[i] = outcome;
        active--;
        slotWaiters.shift()?.();
        onDone();
      }),
    );
  }
  await Promise.all(running);
  return { outcomes, durationS: (performance.now() - start) / 1000 };
}
