import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Command, CommanderError } from "commander";
import { DEFAULT_DATASET_FILES } from "../../src/bench/datasets.js";
import { type BenchServeOptions, benchServe } from "../../src/bench/runner.js";
import { registerBenchCommand } from "../../src/cli/bench-command.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { type LiveServer, startServer, storiesModelPath } from "../server/helpers.js";
import { type HeldServer, startHeldServer } from "./held-server.js";

/** Bounds on starting or stopping a server, and on one benchmark run against it. */
const HOOK_TIMEOUT = { timeout: 30_000 };
const RUN_TIMEOUT = { timeout: 60_000 };

describe("lamina bench serve against a live server (stories260K, real engine)", () => {
  let s: LiveServer | undefined;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "lamina-bench-"));
    s = await startServer();
  }, HOOK_TIMEOUT);
  after(async () => {
    try {
      await s?.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, HOOK_TIMEOUT);

  const base = (over: Partial<BenchServeOptions>): BenchServeOptions => ({
    baseUrl: s!.url,
    dataset: "random",
    burstiness: 1,
    traceSpeedup: 1,
    numPrompts: 12,
    warmup: 0,
    seed: 0,
    slo: null,
    outputLen: 16,
    random: { inputLen: 64, outputLen: 16, rangeRatio: 0 },
    progress: false,
    log: () => {},
    ...over,
  });

  it("random dataset: exact prompt and output lengths, metrics, JSON and a table", RUN_TIMEOUT, async () => {
    const resultJson = path.join(dir, "random.json");
    const r = await benchServe(
      base({
        maxConcurrency: 4,
        warmup: 2,
        resultJson,
        slo: { ttft: 60_000, tpot: 60_000 },
        baseUrl: `${s!.url}/v1/`,
      }),
    );
    assert.equal(r.metrics.completed, 12);
    assert.equal(r.metrics.failed, 0);
    // Prompts are synthesised in the server's own tokens, so the server counts exactly 64.
    assert.deepEqual(
      r.outcomes.map((o) => o.promptTokens),
      new Array(12).fill(64),
    );
    assert.deepEqual(
      r.outcomes.map((o) => o.outputTokens),
      new Array(12).fill(16),
    );
    for (const o of r.outcomes) {
      assert.ok(o.ttft > 0 && o.latency >= o.ttft);
      assert.ok(o.itl.length >= 1 && o.itl.length <= 15);
    }
    assert.equal(r.metrics.total_output_tokens, 192);
    assert.ok(r.metrics.output_throughput > 0);
    assert.equal(
      r.metrics.request_goodput,
      r.metrics.request_throughput,
      "a generous SLO counts every request",
    );
    const json = JSON.parse(readFileSync(resultJson, "utf8"));
    assert.equal(json.completed, 12);
    assert.equal(json.model_id, "stories260K");
    assert.equal(json.max_context, 512);
    assert.equal(json.ttfts.length, 12);
    assert.match(r.report, /Serving Benchmark Result/);
    assert.match(r.report, /Successful requests:\s+12/);
    assert.match(r.report, /Mean TPOT \(ms\):/);
    // The server's own account of the run, from /metrics: 12 × 16 tokens, batched.
    assert.ok(r.server, "server-side figures");
    assert.ok(r.server.steps >= 16 && r.server.steps <= 12 * 16, String(r.server.steps));
    assert.ok(r.server.mean_tokens_per_step! > 1, "requests shared steps");
    assert.ok(r.server.engine_busy_share! > 0 && r.server.engine_busy_share! < 1.5);
    assert.match(r.report, /Engine busy \(% of duration\):/);
  });

  it(
    "Azure conversation trace at a Poisson rate, clamped to the model's 512-token context",
    RUN_TIMEOUT,
    async () => {
      const r = await benchServe(
        base({
          dataset: "azure-conv",
          datasetPath: sharedDataPath(...DEFAULT_DATASET_FILES["azure-conv"]),
          numPrompts: 6,
          requestRate: 40,
        }),
      );
      assert.equal(r.metrics.completed, 6);
      // The first trace rows are (374, 44), (396, 109): both fit and keep their lengths.
      assert.deepEqual(
        r.outcomes.slice(0, 2).map((o) => [o.promptTokens, o.outputTokens]),
        [
          [374, 44],
          [396, 109],
        ],
      );
      for (const o of r.outcomes) assert.ok(o.promptTokens + o.outputTokens <= 512);
    },
  );

  it(
    "Mooncake trace replayed on its timestamps (sped up) and ShareGPT text prompts",
    RUN_TIMEOUT,
    async () => {
      const mooncake = await benchServe(
        base({
          dataset: "mooncake",
          datasetPath: sharedDataPath(...DEFAULT_DATASET_FILES.mooncake),
          numPrompts: 4,
          traceSpeedup: 1000,
          maxContext: 128,
        }),
      );
      assert.equal(mooncake.metrics.completed, 4);
      assert.equal(mooncake.json.request_rate, "trace");
      // (6758, 500) clamped to 128: output 64, prompt 64.
      assert.deepEqual([mooncake.outcomes[0]!.promptTokens, mooncake.outcomes[0]!.outputTokens], [64, 64]);
      const sharegpt = await benchServe(
        base({
          dataset: "sharegpt",
          datasetPath: sharedDataPath(...DEFAULT_DATASET_FILES.sharegpt),
          numPrompts: 4,
          outputLen: 8,
        }),
      );
      assert.equal(sharegpt.metrics.completed, 4);
      assert.ok(sharegpt.outcomes.every((o) => o.outputTokens === 8 && o.promptTokens > 1));
    },
  );

  it("clamps to the model's context even when --max-context is larger", RUN_TIMEOUT, async () => {
    const r = await benchServe(
      base({ numPrompts: 3, random: { inputLen: 600, outputLen: 4, rangeRatio: 0 }, maxContext: 4096 }),
    );
    assert.equal(r.metrics.completed, 3);
    assert.deepEqual(
      r.outcomes.map((o) => [o.promptTokens, o.outputTokens]),
      [
        [508, 4],
        [508, 4],
        [508, 4],
      ],
    );
  });
});

/** Options for a run of `n` requests of 8 prompt and `outputTokens` output tokens, all sent at once. */
const allAtOnce = (baseUrl: string, n: number, outputTokens: number): BenchServeOptions => ({
  baseUrl,
  dataset: "random",
  burstiness: 1,
  traceSpeedup: 1,
  numPrompts: n,
  warmup: 0,
  seed: 0,
  slo: null,
  outputLen: 1,
  random: { inputLen: 8, outputLen: outputTokens, rangeRatio: 0 },
  progress: false,
  log: () => {},
});

describe("lamina bench serve against a server whose queue is full", () => {
  let s: HeldServer | undefined;
  before(async () => {
    s = await startHeldServer(2);
  }, HOOK_TIMEOUT);
  after(() => s?.close(), HOOK_TIMEOUT);

  it(
    "records refused requests as failures with their HTTP status instead of crashing",
    RUN_TIMEOUT,
    async () => {
      const server = s!;
      const run = benchServe(allAtOnce(server.url, 6, 5));
      // The server holds the 2 it admitted until all 6 have arrived: 4 refusals, whatever the timing.
      await Promise.race([
        server.arrived(6),
        run.then(() => assert.fail("the run ended before all its requests had arrived")),
      ]);
      assert.deepEqual([server.admitted, server.refused], [2, 4]);
      server.release();
      const r = await run;
      assert.equal(r.metrics.completed, 2);
      assert.equal(r.metrics.failed, 4);
      assert.equal(r.metrics.total_output_tokens, 10);
      const errors = r.json.errors as string[];
      assert.equal(errors.length, 4);
      for (const e of errors) assert.match(e, /^HTTP 429: .*"code":"queue_full"/);
      assert.match(r.report, /Successful requests:\s+2/);
    },
  );
});

describe("lamina bench serve against a real server that takes no requests (max 0 waiting)", () => {
  let s: LiveServer | undefined;
  before(async () => {
    s = await startServer({ model: storiesModelPath(), maxWaiting: 0 });
  }, HOOK_TIMEOUT);
  after(() => s?.close(), HOOK_TIMEOUT);

  it("gets the real server's 429 for every request and reports each as a failure", RUN_TIMEOUT, async () => {
    const r = await benchServe(allAtOnce(s!.url, 6, 4));
    assert.equal(r.metrics.completed, 0);
    assert.equal(r.metrics.failed, 6);
    const errors = r.json.errors as string[];
    assert.equal(errors.length, 6);
    for (const e of errors) assert.match(e, /^HTTP 429: .*queue_full/);
  });
});

describe("lamina bench serve flags", () => {
  async function parse(args: string[]) {
    const program = new Command("lamina")
      .exitOverride()
      .configureOutput({ writeErr: () => {}, writeOut: () => {} });
    const bench = registerBenchCommand(program);
    bench.exitOverride();
    for (const c of bench.commands) c.exitOverride();
    return program.parseAsync(["node", "lamina", "bench", "serve", ...args]);
  }

  it("rejects bad values with a message naming the flag", async () => {
    const cases: [string[], RegExp][] = [
      [["--dataset", "random"], /--base-url/],
      [["--base-url", "http://x", "--dataset", "imagenet"], /--dataset/],
      [
        ["--base-url", "http://x", "--dataset", "random", "--request-rate", "-3"],
        /--request-rate must be a positive number/,
      ],
      [
        ["--base-url", "http://x", "--dataset", "random", "--num-prompts", "0"],
        /--num-prompts must be an integer ≥ 1/,
      ],
      [
        ["--base-url", "http://x", "--dataset", "random", "--burstiness", "0"],
        /--burstiness must be a positive number/,
      ],
    ];
    for (const [args, message] of cases) {
      await assert.rejects(
        parse(args),
        (err: unknown) => err instanceof CommanderError && message.test(err.message),
        args.join(" "),
      );
    }
    await assert.rejects(
      parse(["--base-url", "http://x", "--dataset", "random", "--goodput", "ttft=1"]),
      /'ttft=1' is not/,
    );
  });

  it("fails clearly when the server cannot be reached", RUN_TIMEOUT, async () => {
    await assert.rejects(
      benchServe({
        baseUrl: "http://127.0.0.1:1",
        dataset: "random",
        burstiness: 1,
        traceSpeedup: 1,
        numPrompts: 1,
        warmup: 0,
        seed: 0,
        slo: null,
        outputLen: 1,
        random: { inputLen: 4, outputLen: 4, rangeRatio: 0 },
        progress: false,
        log: () => {},
      }),
      /cannot reach http:\/\/127\.0\.0\.1:1\/v1\/models/,
    );
  });
});
