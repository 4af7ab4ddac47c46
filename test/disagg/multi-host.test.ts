import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import type { RemoteAttentionService } from "../../src/attention/remote-service.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildColocatedEngine, buildEngine } from "../../src/placement/build.js";
import { ModelWorkerExecutor } from "../../src/runtime/model-worker-executor.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { type GroupChild, spawnGroup } from "../helpers/processes.js";
import { DelayProxy } from "./delay-proxy.js";
import { stepLoop } from "./step-loop.js";
import {
  LAMINA_BIN,
  startWorkerProc,
  stopWorkerProc,
  storyRequests,
  TEST_TOKEN,
  type WorkerProc,
} from "./worker-procs.js";

// Attention workers as separate hosts: each in its own network namespace behind a veth pair, in a
// private /24 of 10.213.0.0/16, reached over TCP by address (one of them through a proxy that
// delays every chunk 2 ms each way). Greedy tokens must equal the colocated run's.

const run = promisify(execFile);
const DELAY_MS = 2;
const tag = String(process.pid % 100_000);
// Two /24s per run, picked from the pid so concurrent runs on one machine do not collide.
const subnet = (i: number) => `10.213.${10 + ((process.pid % 100) * 2 + i)}`;
const hosts = [0, 1].map((i) => ({
  // The test runner's tag in the namespace names lets it remove them if this file is killed.
  ns: `lamina-${process.env.LAMINA_SHM_TAG ?? `t${tag}`}-ns${i}`,
  hostIf: `lh${tag}${i}`,
  nsIf: `ln${tag}${i}`,
  hostAddr: `${subnet(i)}.1`,
  nsAddr: `${subnet(i)}.2`,
}));
const created: { ns: string[]; links: string[] } = { ns: [], links: [] };
const workers: WorkerProc[] = [];
let proxy: DelayProxy | null = null;
let model: LoadedModel;
let addrs: string[] = [];
let expected: number[][];
const backend = nativeBackend();

async function ip(...args: string[]): Promise<void> {
  try {
    await run("ip", args);
  } catch (e) {
    throw new Error(
      `ip ${args.join(" ")} failed: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`,
    );
  }
}

before(async () => {
  const probe = spawnSync("ip", ["-V"]);
  if (probe.error || probe.status !== 0)
    throw new Error(
      "the multi-host test needs the `ip` command (iproute2) and root to create network namespaces; install iproute2 and run as root",
    );
  model = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
  expected = (
    await stepLoop(buildColocatedEngine(model, backend, { maxTokensPerStep: 16 }), storyRequests(model))
  ).tokens;
  for (const h of hosts) {
    await ip("netns", "add", h.ns);
    created.ns.push(h.ns);
    await ip("link", "add", h.hostIf, "type", "veth", "peer", "name", h.nsIf);
    created.links.push(h.hostIf);
    await ip("link", "set", h.nsIf, "netns", h.ns);
    await ip("addr", "add", `${h.hostAddr}/24`, "dev", h.hostIf);
    await ip("link", "set", h.hostIf, "up");
    await ip("netns", "exec", h.ns, "ip", "addr", "add", `${h.nsAddr}/24`, "dev", h.nsIf);
    await ip("netns", "exec", h.ns, "ip", "link", "set", h.nsIf, "up");
    await ip("netns", "exec", h.ns, "ip", "link", "set", "lo", "up");
    workers.push(await startWorkerProc(`${h.nsAddr}:0`, { prefix: ["ip", "netns", "exec", h.ns] }));
  }
  const [w0, w1] = workers as [WorkerProc, WorkerProc];
  assert.equal(w0.host, hosts[0]!.nsAddr, "the worker listens inside its namespace");
  proxy = new DelayProxy({ host: w1.host, port: w1.port }, DELAY_MS);
  await proxy.listen();
  addrs = [`${w0.host}:${w0.port}`, `127.0.0.1:${proxy.port}`];
});

after(async () => {
  // Runs even when before() failed half-way: undo exactly what was created.
  await proxy?.close();
  for (const w of workers) await stopWorkerProc(w);
  for (const l of created.links) await ip("link", "del", l).catch(() => {});
  for (const ns of created.ns) await ip("netns", "del", ns).catch(() => {});
});

describe("attention workers on other hosts (network namespaces), one behind a 2 ms proxy", () => {
  it("each worker's namespace is its own host: no route from one to the other's /24", async () => {
    const [a, b] = hosts as [(typeof hosts)[0], (typeof hosts)[0]];
    const r = spawnSync("ip", ["netns", "exec", a.ns, "ip", "route", "get", b.nsAddr]);
    assert.notEqual(r.status, 0, "each namespace only knows its own /24: they are separate hosts");
  });

  for (const partition of ["head", "request"] as const) {
    it(`${partition} partition over --attention-worker-addrs gives the colocated tokens`, async () => {
      const chunksBefore = proxy!.chunks;
      const engine = await buildEngine(model, backend, {
        attentionWorkerAddrs: addrs,
        attentionToken: TEST_TOKEN,
        partition,
        pipelineDepth: 2,
        maxTokensPerStep: 16,
        kvMemory: 16 << 20,
      });
      const service = engine.attention as RemoteAttentionService;
      try {
        const res = await stepLoop(engine, storyRequests(model));
        assert.deepEqual(res.errors, []);
        assert.deepEqual(res.tokens, expected);
        // `ip netns exec` execs the worker, so the pid each worker reports is the one the test spawned.
        assert.deepEqual(
          service.workerPids().map((p) => p.pid),
          workers.map((w) => w.child.pid),
          "the engine reached the workers inside the namespaces",
        );
        assert.ok(proxy!.chunks - chunksBefore > 100, "traffic went through the delaying proxy");
        for (const s of await service.workerStats()) assert.equal(s!.usedBlocks, 0);
      } finally {
        await service.close();
      }
    });
  }

  it("a worker on another host serves every layer over its TCP data-plane socket", async () => {
    const engine = await buildEngine(model, backend, {
      attentionWorkerAddrs: [addrs[0]!],
      attentionToken: TEST_TOKEN,
      pipelineDepth: 2,
      maxTokensPerStep: 16,
      kvMemory: 16 << 20,
    });
    const service = engine.attention as RemoteAttentionService;
    try {
      assert.notEqual(service.drive, null, "the exchange runs on the native data plane");
      const res = await stepLoop(engine, storyRequests(model));
      assert.deepEqual(res.errors, []);
      assert.deepEqual(res.tokens, expected);
    } finally {
      await service.close();
    }
  });

  it("model workers reach a worker on another host over data-plane sockets of their own", async () => {
    const dir = path.join(sharedDataPath("models", "stories260K"), "hf");
    const frontEnd = await loadModel(dir, { weights: false });
    const engine = await buildEngine(frontEnd, backend, {
      model: dir,
      modelWorkers: 2,
      attentionWorkerAddrs: [addrs[0]!],
      attentionToken: TEST_TOKEN,
      maxTokensPerStep: 16,
      kvMemory: 16 << 20,
    });
    const service = engine.attention as RemoteAttentionService;
    try {
      const plane = service.sharedPlane();
      assert.ok("targets" in plane, "the model workers have the native data plane");
      assert.equal(plane.targets[0]!.tcp?.host, hosts[0]!.nsAddr, "over TCP, to the other host");
      const res = await stepLoop(engine, storyRequests(model));
      assert.deepEqual(res.errors, []);
      assert.deepEqual(res.tokens, expected);
    } finally {
      await engine.executor.close?.();
      await service.close();
    }
  });

  it("model workers on other hosts: the model plane over TCP, one worker beside the attention worker, one on this host", async () => {
    const dir = path.join(sharedDataPath("models", "stories260K"), "hf");
    const h = hosts[0]!;
    // As an operator would start them: one inside the attention worker's namespace (another host),
    // one on this host's side of the link, each listening where the others can reach it.
    const started: GroupChild[] = [];
    const startModelWorker = async (listen: string, prefix: string[]) => {
      const argv = [LAMINA_BIN, "model-worker", "--listen", listen, "--token", TEST_TOKEN, "--model", dir];
      const cmd = prefix.length > 0 ? prefix[0]! : process.execPath;
      const args = prefix.length > 0 ? [...prefix.slice(1), process.execPath, ...argv] : argv;
      const g = spawnGroup(cmd, [...args, "--threads", "1"], { stdio: ["ignore", "ignore", "pipe"] });
      started.push(g);
      const m = await g.waitForOutput(/listening on (\S+:\d+) /, "model worker's listening line", 30_000);
      return m[1]!;
    };
    try {
      const remote = await startModelWorker(`${h.nsAddr}:0`, ["ip", "netns", "exec", h.ns]);
      const local = await startModelWorker(`${h.hostAddr}:0`, []);
      const frontEnd = await loadModel(dir, { weights: false });
      const engine = await buildEngine(frontEnd, backend, {
        model: dir,
        modelWorkerAddrs: [local, remote],
        modelPlane: "tcp",
        attentionWorkerAddrs: [addrs[0]!],
        attentionToken: TEST_TOKEN,
        maxTokensPerStep: 16,
        kvMemory: 16 << 20,
      });
      try {
        assert.ok(engine.executor instanceof ModelWorkerExecutor);
        const res = await stepLoop(engine, storyRequests(model));
        assert.deepEqual(res.errors, []);
        assert.deepEqual(res.tokens, expected);
        const net = engine.executor.planeNetInfo()!;
        assert.deepEqual([...net.linked].sort(), [1, 2], "the front end reaches both copies");
        assert.equal(net.malformed, 0);
        assert.equal(engine.recoveries, 0);
      } finally {
        await engine.executor.close?.();
        await engine.attention.close();
      }
    } finally {
      for (const g of started) await g.stop();
    }
  });

  it("the CLI's `generate --attention-worker-addrs` matches colocated `generate`", async () => {
    const dir = path.join(sharedDataPath("models", "stories260K"), "hf");
    const common = [
      LAMINA_BIN,
      "generate",
      "--model",
      dir,
      "--prompt",
      "Once upon a time",
      "--max-tokens",
      "24",
    ];
    const flags = ["--temperature", "0", "--json"];
    const local = await run(process.execPath, [...common, ...flags]);
    const remote = await run(process.execPath, [
      ...common,
      ...flags,
      "--attention-worker-addrs",
      addrs.join(","),
      "--attention-token",
      TEST_TOKEN,
    ]);
    const tokens = (out: string) =>
      (JSON.parse(out.trim().split("\n").at(-1)!) as { token_ids: number[] }).token_ids;
    assert.equal(tokens(local.stdout).length, 24);
    assert.deepEqual(tokens(remote.stdout), tokens(local.stdout));
  });
});
