import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { registerServeCommand } from "../../src/server/serve-command.js";
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
    ];
    for (const [args, message] of cases) {
      await assert.rejects(
        parse(args),
        (err: unknown) => err instanceof CommanderError && message.test(err.message),
        args.join(" "),
      );
    }
  });

  it("refuses spawning and connecting attention workers at once", async () => {
    await assert.rejects(
      parse(["--attention-workers", "2", "--attention-worker-addrs", "127.0.0.1:9000"]),
      /exclusive/,
    );
  });
});

const entry = path.join(path.dirname(fileURLToPath(import.meta.url)), "serve-main.js");

/** Starts `serve` as a child process and resolves with its URL once it logs that it is ready. */
function startServe(args: string[]): Promise<{ child: ChildProcess; url: string; log: () => string }> {
  const child = spawn(process.execPath, [entry, "serve", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not become ready:\n${log}`)), 30_000);
    child.stderr!.on("data", (d: Buffer) => {
      log += d.toString();
      const m = /ready: (http:\/\/\S+)\/v1/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, log: () => log });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}:\n${log}`));
    });
  });
}

describe("lamina serve as a process", () => {
  it("binds 127.0.0.1, labels the model, drains in-flight requests on SIGTERM and exits 0", async () => {
    const { child, url, log } = await startServe(["--model", storiesModelPath(), "--port", "0"]);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(log(), /model: stories260K — /);
    assert.match(log(), /kernels: /);
    // A long request is in flight when the signal arrives: it must still complete.
    const inFlight = fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "stories260K",
        prompt: "Once",
        max_tokens: 300,
        ignore_eos: true,
        stream: true,
      }),
    });
    const res = await inFlight;
    assert.equal(res.status, 200);
    child.kill("SIGTERM");
    const body = await res.text();
    assert.ok(body.endsWith("data: [DONE]\n\n"));
    assert.match(body, /"finish_reason":"length"/);
    assert.equal(await exited, 0);
    assert.match(log(), /SIGTERM: draining 1 in-flight/);
    assert.match(log(), /stopped/);
    await assert.rejects(fetch(`${url}/health`), "no longer listening");
  });

  it("a second signal cancels in-flight requests at once: the stream ends with finish_reason abort, exit 0", async () => {
    const { child, url, log } = await startServe([
      "--model",
      storiesModelPath(),
      "--port",
      "0",
      "--attention-workers",
      "0",
    ]);
    assert.match(log(), /attention: in-process/);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const res = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "stories260K",
        prompt: "Once",
        max_tokens: 500,
        ignore_eos: true,
        stream: true,
      }),
    });
    assert.equal(res.status, 200);
    child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 50));
    child.kill("SIGTERM");
    const body = await res.text();
    assert.match(body, /"finish_reason":"abort"/);
    assert.ok(body.endsWith("data: [DONE]\n\n"));
    assert.equal(await exited, 0);
    assert.match(log(), /again: cancelling in-flight requests/);
  });

  it("the built-in demo model (stories260K) is clearly labelled", async () => {
    const { child, url, log } = await startServe(["--port", "0", "--max-running", "4"]);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const models = (await (await fetch(`${url}/v1/models`)).json()) as {
      data: { id: string; label: string }[];
    };
    assert.match(log(), /model: stories260K — stories260K \(built-in demo: .*TinyStories/);
    // Disaggregated by default: one locally spawned attention worker holds the KV cache.
    assert.match(log(), /attention: 1 attention worker/);
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
    child.kill("SIGINT");
    assert.equal(await exited, 0);
  });
});
