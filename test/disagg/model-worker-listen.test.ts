// Model workers at addresses: `lamina model-worker --listen` processes started on their own (as an
// operator would, e.g. pinned to cores), reached by the front end with modelWorkerAddrs (the CLI's
// --model-worker-addrs). They must give the colocated greedy tokens, keep serving the next front
// end after one goes, refuse a second front end, a wrong secret, another model and malformed
// messages with clear errors, and be taken back after a restart mid-run with no token changed.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { buildEngine } from "../../src/placement/build.js";
import type { EngineOptions } from "../../src/placement/options.js";
import { ModelWorkerExecutor } from "../../src/runtime/model-worker-executor.js";
import {
  MODEL_WORKER_MESSAGE,
  MODEL_WORKER_PROTOCOL_VERSION,
} from "../../src/runtime/model-worker-protocol.js";
import type { ReceivedMessage } from "../../src/transport/message.js";
import { connectTcp } from "../../src/transport/tcp.js";
import { runToCompletion } from "../helpers/engine-driver.js";
import { backend, closeCore, colocated, requests, storiesDir } from "../helpers/model-workers.js";
import { type GroupChild, spawnGroup } from "../helpers/processes.js";
import { writeTinyModel } from "../helpers/tiny-models.js";
import { LAMINA_BIN, TEST_TOKEN } from "./worker-procs.js";

interface Listening {
  readonly proc: GroupChild;
  readonly addr: string;
}

/** Starts `lamina model-worker --listen` in its own process group and waits for its listening line. */
async function startModelWorker(
  modelDir: string,
  listen = "127.0.0.1:0",
  extra: string[] = [],
): Promise<Listening> {
  const args = [
    LAMINA_BIN,
    "model-worker",
    "--listen",
    listen,
    "--token",
    TEST_TOKEN,
    "--model",
    modelDir,
    ...extra,
  ];
  const proc = spawnGroup(process.execPath, [...args, "--threads", "1"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  try {
    const m = await proc.waitForOutput(
      /listening on (127\.0\.0\.1:\d+) /,
      "model worker's listening line",
      30_000,
    );
    return { proc, addr: m[1]! };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

/** A port nothing listens on now (the worker's fixed plane port). */
/**
 * A port that is free now and that the kernel will not hand to an outgoing connection before the
 * worker binds it. Port 0 picks from the ephemeral range, the one the engine's own connections
 * draw from between this call and the bind (a CI run once lost the port to one of them): so the
 * port is drawn below that range.
 */
async function freePort(): Promise<number> {
  let low = 32768;
  try {
    low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
  } catch {
    // not Linux: Linux's default range
  }
  const base = low > 11_000 ? 10_000 : 1_024;
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = base + Math.floor(Math.random() * Math.max(1, low - base));
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (!bound) continue;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }
  throw new Error("no free port below the ephemeral range");
}

function options(addrs: string[], more: EngineOptions = {}): EngineOptions {
  return {
    model: storiesDir,
    maxTokensPerStep: 16,
    modelWorkerAddrs: addrs,
    attentionToken: TEST_TOKEN,
    attentionWorkers: 1,
    ...more,
  };
}

/** A raw authenticated control connection, for what a front end would never send. */
async function rawSession(
  addr: string,
): Promise<{ send(control: unknown, type?: number): Promise<ReceivedMessage>; close(): Promise<void> }> {
  const [host, port] = addr.split(":");
  const ch = await connectTcp({ host: host!, port: Number(port), secret: TEST_TOKEN, log: () => {} });
  const inbox: ReceivedMessage[] = [];
  const waiters: ((m: ReceivedMessage) => void)[] = [];
  ch.onMessage((m) => {
    const copy = { ...m, control: structuredClone(m.control) };
    const w = waiters.shift();
    if (w) w(copy);
    else inbox.push(copy);
  });
  const next = () =>
    new Promise<ReceivedMessage>((resolve, reject) => {
      const m = inbox.shift();
      if (m) return resolve(m);
      const t = setTimeout(() => reject(new Error("no reply within 10 s")), 10_000);
      waiters.push((r) => {
        clearTimeout(t);
        resolve(r);
      });
    });
  const hello = await next();
  assert.equal((hello.control as { type: string }).type, "hello");
  return {
    send: async (control, type = MODEL_WORKER_MESSAGE) => {
      await ch.send({ type, control });
      return next();
    },
    close: () => ch.close(),
  };
}

describe("model workers at addresses (lamina model-worker --listen)", () => {
  let model: LoadedModel;
  let bare: LoadedModel;
  let workers: Listening[] = [];
  let planePort = 0;
  const tmp = mkdtempSync(path.join(tmpdir(), "lamina-mw-listen-"));

  before(async () => {
    model = await loadModel(storiesDir);
    bare = await loadModel(storiesDir, { weights: false });
    planePort = await freePort();
    workers = await Promise.all([
      startModelWorker(storiesDir, "127.0.0.1:0", ["--plane-port", String(planePort)]),
      startModelWorker(storiesDir),
    ]);
  });

  after(async () => {
    await Promise.all(workers.map((w) => w.proc.stop()));
    rmSync(tmp, { recursive: true, force: true });
  });

  it("two listening workers give the colocated tokens, and serve the next front end after the first", async () => {
    const reqs = requests(model, 5, 20);
    const expected = await colocated(model, reqs);
    for (const depth of [3, 2]) {
      const core = await buildEngine(
        bare,
        backend,
        options(
          workers.map((w) => w.addr),
          { pipelineDepth: depth },
        ),
      );
      try {
        assert.ok(core.executor instanceof ModelWorkerExecutor);
        const got = [...(await runToCompletion(core, reqs)).values()].map((c) => c.tokens);
        assert.deepEqual(got, expected, `depth ${depth}`);
      } finally {
        await closeCore(core);
      }
    }
    // The next front end, over a TCP model plane (as from another host): the same workers serve it,
    // the first one taking the plane's frames on the port it was given.
    const core = await buildEngine(
      bare,
      backend,
      options(
        workers.map((w) => w.addr),
        { modelPlane: "tcp", transport: "tcp" },
      ),
    );
    try {
      const got = [...(await runToCompletion(core, reqs)).values()].map((c) => c.tokens);
      assert.deepEqual(got, expected, "over the TCP model plane");
      assert.match(workers[0]!.proc.output(), new RegExp(`plane listens on 127\\.0\\.0\\.1:${planePort}\\b`));
    } finally {
      await closeCore(core);
    }
    // A front end that goes leaves the workers listening, weights loaded.
    for (const w of workers) assert.equal(w.proc.child.exitCode, null, w.proc.output());
  });

  it("a second front end is refused while one is served", async () => {
    const core = await buildEngine(bare, backend, options([workers[0]!.addr]));
    try {
      await assert.rejects(
        buildEngine(bare, backend, options([workers[0]!.addr])),
        /busy: serving the front end at/,
      );
    } finally {
      await closeCore(core);
    }
  });

  it("a wrong secret and a worker of another model are refused with clear errors", async () => {
    await assert.rejects(
      buildEngine(bare, backend, { ...options([workers[0]!.addr]), attentionToken: "not-the-secret-at-all" }),
      /handshake|secret|authenticat/i,
    );
    const other = path.join(tmp, "other");
    writeTinyModel(other, "llama-gqa");
    const w = await startModelWorker(other);
    try {
      await assert.rejects(
        buildEngine(bare, backend, options([w.addr])),
        /holds another model \(fingerprint/,
      );
    } finally {
      await w.proc.stop();
    }
    await assert.rejects(
      buildEngine(bare, backend, { ...options([workers[0]!.addr]), modelWorkers: 2 }),
      /--model-workers and --model-worker-addrs are exclusive/,
    );
  });

  it("malformed messages get error replies and leave the worker serving", async () => {
    const s = await rawSession(workers[1]!.addr);
    try {
      const bad = await s.send({ v: MODEL_WORKER_PROTOCOL_VERSION, type: "configure", epoch: -1 });
      assert.match((bad.control as { message: string }).message, /^bad message: /);
      const old = await s.send({ v: 1, type: "stop" });
      assert.match((old.control as { message: string }).message, /^bad message: v/);
      const frame = await s.send({ anything: true }, 0x41);
      assert.match(
        (frame.control as { message: string }).message,
        /frame type 65 is not a model worker message/,
      );
      const elsewhere = await s.send({
        v: MODEL_WORKER_PROTOCOL_VERSION,
        type: "configure",
        epoch: 0,
        plane: "/lamina-no-such-plane",
        shape: { microBatches: 1, replicas: 1, targets: 1, maxTokens: 4, maxSeqs: 1, buffers: [] },
        replica: 0,
        lease: 1,
        targets: [
          {
            segment: "/lamina-no-such-segment",
            shape: {
              numTags: 1,
              maxTokens: 4,
              maxSeqs: 1,
              maxBlocksPerSeq: 1,
              qWidth: 64,
              kvWidth: 64,
              numLayers: 5,
            },
            outColOff: 0,
            kvColOff: 0,
          },
        ],
        qWidth: 64,
        kvWidth: 64,
        maxContext: 16,
        spinUs: 0,
        timeoutMs: 100,
      });
      assert.equal((elsewhere.control as { type: string }).type, "error");
    } finally {
      await s.close();
    }
    const reqs = requests(model, 2, 8);
    const core = await buildEngine(bare, backend, options([workers[1]!.addr]));
    try {
      const got = [...(await runToCompletion(core, reqs)).values()].map((c) => c.tokens);
      assert.deepEqual(got, await colocated(model, reqs));
    } finally {
      await closeCore(core);
    }
  });

  it("a worker killed mid-run and restarted on its address is taken back; every request completes with the same tokens", async () => {
    const reqs = requests(model, 5, 40);
    const expected = await colocated(model, reqs);
    const core = await buildEngine(
      bare,
      backend,
      options(
        workers.map((w) => w.addr),
        { pipelineDepth: 3 },
      ),
    );
    try {
      const ex = core.executor as ModelWorkerExecutor;
      for (const r of reqs) core.add(r);
      const out = new Map(reqs.map((r) => [r.id, [] as number[]]));
      let steps = 0;
      let restarted: Promise<void> | null = null;
      while (core.hasWork) {
        if (++steps === 12) {
          const victim = workers[1]!;
          const pid = ex.pids()[1];
          assert.equal(pid, victim.proc.child.pid, "the front end knows the worker's pid from its hello");
          // An operator's supervisor: the worker dies and comes back on the same address.
          restarted = victim.proc.stop().then(async () => {
            workers[1] = await startModelWorker(storiesDir, victim.addr);
          });
        }
        for (const ev of await core.runStep()) {
          assert.equal(ev.error, undefined, `no request sees the loss: ${ev.error}`);
          out.get(ev.requestId)!.push(...ev.tokenIds);
        }
      }
      await restarted;
      assert.ok(steps > 12, "the kill happened mid-run");
      assert.deepEqual([...out.values()], expected);
      assert.ok(core.recoveries >= 1, "a recovery ran");
      assert.equal(ex.pids()[1], workers[1]!.proc.child.pid, "the restarted worker serves replica 1");
    } finally {
      await closeCore(core);
    }
  });
});
