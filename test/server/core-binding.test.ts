// Cores of their own for spawned attention workers: the plan, the CPU lists, the binding of a
// whole process (in a child, so this test process keeps its CPUs), and `lamina serve` as a user
// runs it, with and without --no-core-binding.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { BOUND_PURE_SPIN_US, formatCpuList, parseCpuList } from "../../src/kernels/cpus.js";
import { planCoreBinding } from "../../src/placement/core-binding.js";
import { spawnGroup } from "../helpers/processes.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const serveEntry = path.join(here, "serve-main.js");
const cli = path.join(here, "..", "..", "src", "cli", "main.js");
const cpusModule = path.join(here, "..", "..", "src", "kernels", "cpus.js");
const nativeModule = path.join(here, "..", "..", "src", "kernels", "native-addon.js");

/** Each thread's CPU list of process `pid` ("self" for this one), as the kernel reports it. */
function threadCpus(pid: number | "self"): string[] {
  const out: string[] = [];
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const m = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/task/${t}/status`, "utf8"));
      if (m) out.push(m[1]!);
    } catch {
      /* the thread exited meanwhile */
    }
  }
  return out;
}

const allowed = parseCpuList(threadCpus("self")[0]!);

describe("core binding: the plan and CPU lists", () => {
  it("gives each worker cores from the end and the model side the rest", () => {
    assert.deepEqual(planCoreBinding([0, 1], 1, 1), { model: [0], workers: [[1]] });
    assert.deepEqual(planCoreBinding([0, 1, 2, 3, 4, 5], 2, 2), {
      model: [0, 1],
      workers: [
        [2, 3],
        [4, 5],
      ],
    });
    assert.deepEqual(planCoreBinding([2, 3, 8, 9], 1, 1, 3), { model: [2, 3, 8], workers: [[9]] });
  });

  it("says why there is no binding where the CPUs do not allow one", () => {
    assert.equal(
      planCoreBinding([0], 1, 1),
      "1 CPU cannot give 1 attention worker 1 each and keep one for the model side",
    );
    assert.equal(
      planCoreBinding([0, 1, 2], 2, 2),
      "3 CPUs cannot give 2 attention workers 2 each and keep one for the model side",
    );
    assert.equal(
      planCoreBinding([0, 1, 2], 1, 1, 3),
      "--threads 3 asks for more than the 2 CPUs the attention workers leave",
    );
    assert.equal(planCoreBinding([0, 1], 0, 1), "no attention worker is spawned here");
  });

  it("reads and writes CPU lists as Linux writes them, and refuses what is not one", () => {
    assert.deepEqual(parseCpuList("0-3,6, 8-9"), [0, 1, 2, 3, 6, 8, 9]);
    assert.deepEqual(parseCpuList("5,1,1"), [1, 5]);
    assert.equal(formatCpuList([0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
    assert.equal(formatCpuList([4]), "4");
    assert.throws(() => parseCpuList("3-1"), /the range 3-1 runs backwards/);
    assert.throws(() => parseCpuList("a"), /"a" is not a CPU number or range/);
    assert.throws(() => parseCpuList("1,,2"), /"" is not a CPU number or range/);
  });
});

/** Runs `body` (an ES module's statements, with bindThisProcess in scope) in a child; its JSON line. */
function inChild(body: string): { status: number | null; out: unknown; stderr: string } {
  const script = `import { bindThisProcess, allowedCpus } from ${JSON.stringify(cpusModule)};
import { loadNativeAddon } from ${JSON.stringify(nativeModule)};
const pureSpin = () => loadNativeAddon().addon.pureSpin();
import { readdirSync, readFileSync } from "node:fs";
const cpusOfThreads = () => readdirSync("/proc/self/task").map((t) => /Cpus_allowed_list:\\s*(\\S+)/.exec(readFileSync("/proc/self/task/" + t + "/status", "utf8"))[1]);
${body}`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 30_000,
  });
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  return { status: r.status, out: line ? JSON.parse(line) : null, stderr: r.stderr };
}

describe("core binding: a whole process", () => {
  it("binds every thread, and the threads started afterwards, to the CPUs asked for; its waits then spin alone longer", () => {
    const cpu = allowed.at(-1)!;
    const r = inChild(`
const spinBefore = pureSpin();
const bound = bindThisProcess([${cpu}]);
const { Worker } = await import("node:worker_threads");
const w = new Worker("setInterval(() => {}, 1000)", { eval: true });
await new Promise((res) => w.once("online", res));
const after = cpusOfThreads();
await w.terminate();
console.log(JSON.stringify({ bound, cpus: [...new Set(after)], allowed: allowedCpus(), spin: [spinBefore, pureSpin()] }));`);
    assert.equal(r.status, 0, r.stderr);
    const out = r.out as { bound: number; cpus: string[]; allowed: number[]; spin: number[] };
    assert.ok(out.bound >= 2, `threads bound: ${out.bound}`);
    assert.deepEqual(
      out.cpus,
      [String(cpu)],
      "every thread, the worker thread started after the binding too",
    );
    assert.deepEqual(out.allowed, [cpu]);
    assert.deepEqual(out.spin, [20, BOUND_PURE_SPIN_US], "waits spin alone 20 µs unbound, longer bound");
  });

  it("refuses CPUs the process may not use with an error naming them, and leaves its threads where they were", () => {
    const absent = Math.max(...allowed) + 1;
    const r = inChild(`
const errors = [];
for (const cpus of [[${absent}], [], [99999]]) {
  try { bindThisProcess(cpus); errors.push(null); } catch (e) { errors.push(e.constructor.name + ": " + e.message); }
}
console.log(JSON.stringify({ errors, cpus: [...new Set(cpusOfThreads())], spin: pureSpin() }));`);
    assert.equal(r.status, 0, r.stderr);
    const out = r.out as { errors: string[]; cpus: string[]; spin: number };
    assert.deepEqual(out.errors, [
      `RangeError: cannot bind to CPUs ${absent}: none of them is online and allowed to this process`,
      "RangeError: no CPUs to bind to",
      "RangeError: cannot bind to CPUs 99999: CPU 99999 is out of range (0..1023)",
    ]);
    assert.deepEqual(out.cpus, [formatCpuList(allowed)], "nothing moved");
    assert.equal(out.spin, 20, "nor did the waits' pure spin");
  });

  it("names the missing CPUs where only some of a list can be used", () => {
    const absent = Math.max(...allowed) + 1;
    const r = inChild(`
try { bindThisProcess([${allowed[0]}, ${absent}]); console.log(JSON.stringify(null)); }
catch (e) { console.log(JSON.stringify(e.message)); }`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.out,
      `cannot bind to CPUs ${allowed[0]},${absent}: ${absent} not available to this process (its threads are on ${allowed[0]})`,
    );
  });

  it("lamina attention-worker --cpus refuses a bad list before it serves anything", () => {
    const run = (cpus: string) =>
      spawnSync(
        process.execPath,
        [cli, "attention-worker", "--cpus", cpus, "--listen", "127.0.0.1:0", "--token", "t"],
        {
          encoding: "utf8",
          timeout: 30_000,
        },
      );
    const backwards = run("3-1");
    assert.equal(backwards.status, 1);
    assert.match(
      backwards.stderr,
      /option '--cpus <list>' argument '3-1' is invalid\. the range 3-1 runs backwards/,
    );
    const absent = run(String(Math.max(...allowed) + 1));
    assert.equal(absent.status, 1);
    assert.match(
      absent.stderr,
      /lamina: cannot bind to CPUs \d+: none of them is online and allowed to this process/,
    );
  });
});

describe("core binding: lamina serve with a spawned attention worker", () => {
  async function serve(extra: string[]) {
    const proc = spawnGroup(
      process.execPath,
      [serveEntry, "serve", "--port", "0", "--attention-workers", "1", "--max-running", "4", ...extra],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    try {
      const ready = await proc.waitForOutput(/ready: (http:\/\/\S+)\/v1/, "ready line", 30_000);
      const worker = /attention worker local-0 \(pid (\d+)\)/.exec(proc.output());
      assert.ok(worker, proc.output());
      return { proc, url: ready[1]!, workerPid: Number(worker[1]) };
    } catch (e) {
      await proc.stop();
      throw e;
    }
  }

  async function completes(url: string): Promise<void> {
    const res = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 8, temperature: 0, ignore_eos: true }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { usage: { completion_tokens: number } };
    assert.equal(body.usage.completion_tokens, 8);
  }

  it("by default the worker's threads get the last CPU, the server's every other", {
    timeout: 90_000,
  }, async () => {
    const { proc, url, workerPid } = await serve([]);
    try {
      await completes(url);
      if (allowed.length < 2) {
        // Nothing to split: the server says so and both sides keep every CPU.
        assert.match(proc.output(), /cores: not bound \(1 CPU cannot give 1 attention worker 1 each/);
        return;
      }
      const model = formatCpuList(allowed.slice(0, -1));
      const worker = String(allowed.at(-1));
      assert.match(
        proc.output(),
        new RegExp(
          `cores: model side on ${model}, attention worker local-0 on ${worker}, waits spinning alone up to ${BOUND_PURE_SPIN_US} µs \\(--no-core-binding`,
        ),
      );
      assert.match(
        proc.output(),
        new RegExp(
          `attention-worker\\[${workerPid}\\]: bound \\d+ threads to CPUs ${worker} \\(waits spin alone up to ${BOUND_PURE_SPIN_US} µs\\)`,
        ),
      );
      assert.deepEqual([...new Set(threadCpus(proc.pid))], [model], "every thread of the server");
      assert.deepEqual([...new Set(threadCpus(workerPid))], [worker], "every thread of the worker");
      assert.match(readFileSync(`/proc/${workerPid}/cmdline`, "utf8"), new RegExp(`\0--cpus\0${worker}\0`));
    } finally {
      await proc.stop();
    }
  });

  it("--no-core-binding leaves both processes on every CPU", { timeout: 90_000 }, async () => {
    const { proc, url, workerPid } = await serve(["--no-core-binding"]);
    try {
      await completes(url);
      assert.doesNotMatch(proc.output(), /cores: /);
      const all = formatCpuList(allowed);
      assert.deepEqual([...new Set(threadCpus(proc.pid))], [all]);
      assert.deepEqual([...new Set(threadCpus(workerPid))], [all]);
      assert.doesNotMatch(readFileSync(`/proc/${workerPid}/cmdline`, "utf8"), /--cpus/);
    } finally {
      await proc.stop();
    }
  });
});
