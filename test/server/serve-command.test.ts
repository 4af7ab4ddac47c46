import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { type EngineFlagValues, engineOptionsFromFlags } from "../../src/cli/engine-flags.js";
import { defaultAttentionWorkers, registerServeCommand } from "../../src/cli/serve-command.js";
import { loadModel } from "../../src/model/load.js";
import { DEFAULT_BLOCK_SIZE, resolveSizes } from "../../src/placement/sizes.js";
import { DEFAULT_OUTPUT_RESERVE, NO_OUTPUT_RESERVE } from "../../src/util/output-reserve.js";
import { type GroupChild, spawnGroup } from "../helpers/processes.js";
import { storiesModelPath } from "./helpers.js";

function parse(args: string[]): Promise<unknown> {
  const program = new Command("lamina").exitOverride();
  program.configureOutput({ writeErr: () => {}, writeOut: () => {} });
  const serve = registerServeCommand(program);
  serve.exitOverride();
  return program.parseAsync(["node", "lamina", "serve", ...args]);
}

describe("lamina serve flags", () => {
  it("rejects bad values with a message naming the flag", async () => {
    const cases: [string[], RegExp][] = [
      [["--port", "http"], /'--port <port>' argument 'http' is invalid/],
      [["--port", "70000"], /'--port <port>' argument '70000' is invalid/],
      [["--max-running", "0"], /'--max-running <n>' argument '0' is invalid/],
      [["--threads", "-2"], /'--threads <n>' argument '-2' is invalid/],
      [["--kv-memory", "lots"], /'--kv-memory <size>' argument 'lots' is invalid.*size such as/],
      [["--partition", "diagonal"], /'--partition <how>' argument 'diagonal' is invalid.*head, request/],
      [
        ["--attention-worker-addrs", "nohost"],
        /'--attention-worker-addrs <list>'.*"nohost" is not host:port/,
      ],
      [["--pipeline-depth", "1.5"], /'--pipeline-depth <n>' argument '1.5' is invalid/],
      [["--max-waiting", "-1"], /'--max-waiting <n>' argument '-1' is invalid/],
      [["--kv-dtype", "int4"], /'--kv-dtype <dtype>' argument 'int4' is invalid.*f32, f16, bf16, int8/],
      [["--output-reserve", "some"], /'--output-reserve <spec>'.*default, none or INITIAL,MIN,DECAY/],
      [["--output-reserve", "0.5,0.6,0"], /'--output-reserve <spec>'.*min <= initial/],
      [["--output-reserve", "1,0.1,"], /'--output-reserve <spec>'.*decay NaN/],
    ];
    for (const [args, message] of cases) {
      await assert.rejects(
        parse(args),
        (err: unknown) => err instanceof CommanderError && message.test(err.message),
        args.join(" "),
      );
    }
  });

  it("spawns an attention worker by default only into cores the model side leaves free", () => {
    assert.equal(defaultAttentionWorkers({}, 2), 0);
    assert.equal(defaultAttentionWorkers({}, 64), 0);
    assert.equal(defaultAttentionWorkers({ threads: 2 }, 2), 0);
    assert.equal(defaultAttentionWorkers({ threads: 1 }, 2), 1);
    assert.equal(defaultAttentionWorkers({ threads: 1, attentionWorkers: 0 }, 2), 0);
    assert.equal(defaultAttentionWorkers({ attentionWorkers: 3 }, 2), 3);
    assert.equal(defaultAttentionWorkers({ attentionWorkerAddrs: ["h:1"] }, 8), undefined);
    assert.equal(defaultAttentionWorkers({ mode: "pd" }, 8), undefined);
  });

  it("--output-reserve sets the scheduler's output reserve (default: DEFAULT_OUTPUT_RESERVE)", async () => {
    const model = await loadModel(storiesModelPath());
    const reserveOf = (args: string[]) => {
      const program = new Command("lamina").exitOverride();
      const serve = registerServeCommand(program).exitOverride();
      serve.action(() => {});
      program.parse(["node", "lamina", "serve", ...args]);
      return resolveSizes(model, engineOptionsFromFlags(serve.opts() as EngineFlagValues)).outputReserve;
    };
    assert.deepEqual(reserveOf([]), DEFAULT_OUTPUT_RESERVE);
    assert.deepEqual(reserveOf(["--output-reserve", "none"]), NO_OUTPUT_RESERVE);
    assert.deepEqual(reserveOf(["--output-reserve", "0.8,0.2,0.01"]), {
      initial: 0.8,
      min: 0.2,
      decay: 0.01,
    });
  });

  it("--kv-dtype sets the KV cache's element type (default: the model's, f32 here)", async () => {
    const model = await loadModel(storiesModelPath());
    const dtypeOf = (f: EngineFlagValues) => resolveSizes(model, engineOptionsFromFlags(f)).geometry.kvDtype;
    assert.equal(dtypeOf({}), "f32");
    for (const kvDtype of ["f32", "f16", "bf16", "int8"] as const)
      assert.equal(dtypeOf({ kvDtype }), kvDtype);
  });

  it("int8 KV counts its smaller rows (scales included) in the blocks a budget holds, and needs blocks of 4k tokens", async () => {
    const model = await loadModel(storiesModelPath());
    const sizes = (f: EngineFlagValues) =>
      resolveSizes(model, engineOptionsFromFlags({ kvMemory: 1 << 20, ...f }));
    const g = sizes({}).geometry;
    // f32: 2 × headDim × 4 bytes a token and KV head; int8: 2 × (headDim + a 4-byte scale).
    const perTokenF32 = g.numLayers * g.numKvHeads * 2 * g.headDim * 4;
    const perTokenI8 = g.numLayers * g.numKvHeads * 2 * (g.headDim + 4);
    assert.equal(g.blockSize, DEFAULT_BLOCK_SIZE);
    assert.equal(sizes({}).numBlocks, Math.floor((1 << 20) / (perTokenF32 * DEFAULT_BLOCK_SIZE)));
    assert.equal(
      sizes({ kvDtype: "int8" }).numBlocks,
      Math.floor((1 << 20) / (perTokenI8 * DEFAULT_BLOCK_SIZE)),
    );
    assert.equal(
      sizes({ kvDtype: "int8", blockSize: 16 }).numBlocks,
      Math.floor((1 << 20) / (perTokenI8 * 16)),
    );
    assert.throws(
      () => sizes({ kvDtype: "int8", blockSize: 6 }),
      /int8 KV cache needs a block size that is a multiple of 4, got 6/,
    );
  });

  it("refuses spawning and connecting attention workers at once", async () => {
    await assert.rejects(
      parse(["--attention-workers", "2", "--attention-worker-addrs", "127.0.0.1:9000"]),
      /exclusive/,
    );
  });
});

const entry = path.join(path.dirname(fileURLToPath(import.meta.url)), "serve-main.js");

/**
 * Starts `serve` as a child process (in its own process group) and resolves once it logs that it
 * is ready; if it does not, it is killed with its attention workers before the error is thrown.
 */
async function startServe(args: string[]): Promise<{ proc: GroupChild; url: string; log: () => string }> {
  const proc = spawnGroup(process.execPath, [entry, "serve", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  try {
    const m = await proc.waitForOutput(/ready: (http:\/\/\S+)\/v1/, "ready line", 30_000);
    return { proc, url: m[1]!, log: proc.output };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

const JSON_HEADERS = { "content-type": "application/json" };
// A stream still running when the signal arrives. stories260K wrote its whole context (500 tokens)
// in about a tenth of a second on a fast host, sometimes before the signal got there, and there was
// nothing left to drain; the random model's 2048-token context takes 4 choices of 2,000 tokens, about
// 30 times as long.
const LONG_STREAM = JSON.stringify({
  model: "random",
  prompt: "Once",
  max_tokens: 2000,
  n: 4,
  ignore_eos: true,
  stream: true,
});

describe("lamina serve as a process", () => {
  it("binds 127.0.0.1, labels the model, drains in-flight requests on SIGTERM and exits 0", {
    timeout: 60_000,
  }, async () => {
    const { proc, url, log } = await startServe(["--model", "random", "--port", "0"]);
    try {
      const exited = proc.exited.then((s) => s.code);
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.match(log(), /model: random — /);
      assert.match(log(), /kernels: /);
      // A long request is in flight when the signal arrives: it must still complete.
      const inFlight = fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: JSON_HEADERS,
        body: LONG_STREAM,
      });
      const res = await inFlight;
      assert.equal(res.status, 200);
      proc.child.kill("SIGTERM");
      const body = await res.text();
      assert.ok(body.endsWith("data: [DONE]\n\n"));
      assert.match(body, /"finish_reason":"length"/);
      assert.equal(await exited, 0);
      assert.match(log(), /SIGTERM: draining 1 in-flight/);
      assert.match(log(), /stopped/);
      await assert.rejects(fetch(`${url}/health`), "no longer listening");
    } finally {
      await proc.stop();
    }
  });

  it("a second signal cancels in-flight requests at once: the stream ends with finish_reason abort, exit 0", {
    timeout: 60_000,
  }, async () => {
    const { proc, url, log } = await startServe([
      "--model",
      "random",
      "--port",
      "0",
      "--attention-workers",
      "0",
    ]);
    try {
      assert.match(log(), /attention: in-process/);
      const exited = proc.exited.then((s) => s.code);
      const res = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: JSON_HEADERS,
        body: LONG_STREAM,
      });
      assert.equal(res.status, 200);
      proc.child.kill("SIGTERM");
      // The second signal goes once the first is being handled (the server says it drains).
      await proc.waitForOutput(/SIGTERM: draining 1 in-flight/, "drain line", 10_000);
      proc.child.kill("SIGTERM");
      const body = await res.text();
      assert.match(body, /"finish_reason":"abort"/);
      assert.ok(body.endsWith("data: [DONE]\n\n"));
      assert.equal(await exited, 0);
      assert.match(log(), /again: cancelling in-flight requests/);
    } finally {
      await proc.stop();
    }
  });

  it("the built-in demo model (stories260K) is clearly labelled", { timeout: 60_000 }, async () => {
    const { proc, url, log } = await startServe(["--port", "0", "--max-running", "4"]);
    try {
      const exited = proc.exited.then((s) => s.code);
      const models = (await (await fetch(`${url}/v1/models`)).json()) as {
        data: { id: string; label: string }[];
      };
      assert.match(log(), /model: stories260K — stories260K \(built-in demo: .*TinyStories/);
      // On a machine whose cores all go to the model side, attention stays in-process by default
      // and the log names the flag that splits it.
      // The start-up log says how many tokens the KV cache holds.
      assert.match(
        log(),
        /attention: in-process, KV capacity [1-9]\d* tokens of f32 in blocks of 64, prefix caching on, speculative decoding off \(a model under 32 MiB of weights spends a step on fixed costs a draft adds to; --speculative-tokens N turns it on\), output reserve 1 of the remaining output after a preemption, falling by 0\.002 a micro-batch to 0\.1 \(the default on \d+ cores.*--attention-workers N/,
      );
      const done = (await (
        await fetch(`${url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: "stories260K",
            prompt: "Once upon a time",
            max_tokens: 8,
            temperature: 0,
          }),
        })
      ).json()) as { usage: { completion_tokens: number } };
      assert.equal(done.usage.completion_tokens, 8);
      assert.equal(models.data[0]!.id, "stories260K");
      assert.match(models.data[0]!.label, /TinyStories/);
      proc.child.kill("SIGINT");
      assert.equal(await exited, 0);
    } finally {
      await proc.stop();
    }
  });
});
