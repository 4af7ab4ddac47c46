import assert from "node:assert/strict";
import type { Socket } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { DATA_PLANE_LAYOUT } from "../../src/attention/data-plane-native.js";
import { ATTENTION_PROTOCOL_VERSION, type ConfigureRequest, MsgType } from "../../src/attention/protocol.js";
import { RemoteAttentionService } from "../../src/attention/remote-service.js";
import { loadModel } from "../../src/model/load.js";
import type { LoadedModel } from "../../src/model/types.js";
import { AddressedWorker } from "../../src/placement/attention-worker-endpoints.js";
import { buildColocatedEngine } from "../../src/placement/build.js";
import { resolveSizes } from "../../src/placement/sizes.js";
import type { Channel } from "../../src/transport/channel.js";
import { HandshakeError, RemoteError } from "../../src/transport/errors.js";
import { FLAG_ERROR, MAGIC, type Message, type WireTensor } from "../../src/transport/message.js";
import { RpcClient } from "../../src/transport/rpc.js";
import { connectTcp } from "../../src/transport/tcp.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { nativeBackend } from "../helpers/backends.js";
import { closedWithin, encodeFrame, prng, randomBuffer, rawAuthenticated, rawSocket } from "./raw-frames.js";
import { stepLoop } from "./step-loop.js";
import {
  startWorkerProc,
  stopWorkerProc,
  storyRequests,
  TEST_TOKEN,
  type WorkerProc,
} from "./worker-procs.js";

// A live `lamina attention-worker` process takes garbage, unauthenticated frames and
// authenticated nonsense on some connections while an engine generates over another: the bad
// connections are closed (a bad CONFIGURE gets an error reply), the process never dies, and the
// good generation finishes with the colocated tokens.

const backend = nativeBackend();
const quiet = () => {};
let model: LoadedModel;
let worker: WorkerProc;
let expected: number[][];

before(async () => {
  model = await loadModel(path.join(sharedDataPath("models", "stories260K"), "hf"));
  expected = (
    await stepLoop(buildColocatedEngine(model, backend, { maxTokensPerStep: 16 }), storyRequests(model))
  ).tokens;
  worker = await startWorkerProc("127.0.0.1:0");
});
after(() => stopWorkerProc(worker));

const CONFIG: ConfigureRequest = {
  version: ATTENTION_PROTOCOL_VERSION,
  numLayers: 2,
  numHeads: 2,
  numKvHeads: 2,
  headDim: 8,
  blockSize: 4,
  kvDtype: "f32",
  maxContext: 64,
  maxTokens: 8,
  maxSeqs: 4,
  slidingWindow: null,
  kvMemory: null,
  maxTags: 2,
  dataPlane: null,
};

const f32 = (n: number): WireTensor => ({ dtype: "f32", shape: [n], data: new Float32Array(n) });
const i32 = (v: number[]): WireTensor => ({ dtype: "i32", shape: [v.length], data: Int32Array.from(v) });

function alive(): void {
  assert.equal(worker.child.exitCode, null, `the worker process died:\n${worker.log()}`);
  assert.equal(worker.child.signalCode, null, `the worker process was killed:\n${worker.log()}`);
}

async function authed(): Promise<{ channel: Channel; rpc: RpcClient; closed: Promise<string> }> {
  const channel = await connectTcp({ host: worker.host, port: worker.port, secret: TEST_TOKEN, log: quiet });
  const rpc = new RpcClient(channel, { timeoutMs: 5000 });
  const closed = new Promise<string>((resolve) => channel.onClose((i) => resolve(i.reason)));
  return { channel, rpc, closed };
}

async function configured() {
  const c = await authed();
  await c.rpc.request({ type: MsgType.CONFIGURE, control: CONFIG }, (m) => m.control);
  return c;
}

/** A valid STEP for one sequence of `n` tokens at positions 0..n-1 (seq 1 reserved first). */
function stepMessages(n: number): Message[] {
  return [
    { type: MsgType.RESERVE, ints: [1, n, 0] },
    {
      type: MsgType.STEP,
      ints: [0, n, 1],
      tensors: [i32([1]), i32([0, n]), i32(Array.from({ length: n }, (_, i) => i))],
    },
  ];
}

/** The request id of the STATS probe that ends each fuzzed connection (the fuzz uses ids 0..5). */
const PROBE_ID = 0x51a7;
const MAGIC_BYTES = Buffer.alloc(4);
MAGIC_BYTES.writeUInt32LE(MAGIC);

/**
 * What became of a raw authenticated connection, watched from before its first frame: "closed"
 * when the worker closed it (its FIN or a reset arrived; this side never ends the socket first),
 * "open" when the STATS probe sent last was answered (every frame before it was handled and the
 * connection kept), "neither" when nothing happened within `ms`.
 */
function fate(s: Socket, ms: number): Promise<"closed" | "open" | "neither"> {
  return new Promise((resolve) => {
    let seen = Buffer.alloc(0);
    let byPeer = false;
    const onData = (d: Buffer) => {
      seen = Buffer.concat([seen, d]);
      for (let at = seen.indexOf(MAGIC_BYTES); at >= 0; at = seen.indexOf(MAGIC_BYTES, at + 1)) {
        if (
          at + 12 <= seen.length &&
          seen[at + 5] === MsgType.STATS &&
          seen.readUInt32LE(at + 8) === PROBE_ID
        )
          return finish("open");
      }
    };
    const onPeer = () => {
      byPeer = true;
    };
    const onClose = () => finish(byPeer ? "closed" : "neither");
    const timer = setTimeout(() => finish("neither"), ms);
    const finish = (f: "closed" | "open" | "neither") => {
      clearTimeout(timer);
      s.off("data", onData);
      s.off("end", onPeer);
      s.off("error", onPeer);
      s.off("close", onClose);
      resolve(f);
    };
    s.on("data", onData);
    s.once("end", onPeer);
    s.once("error", onPeer);
    s.once("close", onClose);
  });
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)),
  ]);
}

/** Sends the messages on a fresh configured connection and expects the worker to close it. */
async function expectClosed(messages: Message[], what: string): Promise<string> {
  const c = await configured();
  for (const m of messages) await c.channel.send(m).catch(() => {});
  const reason = await within(c.closed, 5000, what);
  alive();
  return reason;
}

const violations: { name: string; messages: Message[] }[] = [
  { name: "Q before STEP", messages: [{ type: MsgType.Q, ints: [0, 0], tensors: [f32(16)] }] },
  {
    name: "KV before its Q",
    messages: [...stepMessages(1), { type: MsgType.KV, ints: [0, 0], tensors: [f32(16), f32(16)] }],
  },
  {
    name: "bad layer",
    messages: [...stepMessages(1), { type: MsgType.Q, ints: [0, 7], tensors: [f32(16)] }],
  },
  {
    name: "negative layer",
    messages: [...stepMessages(1), { type: MsgType.Q, ints: [0, -1], tensors: [f32(16)] }],
  },
  { name: "tag out of range", messages: [{ type: MsgType.STEP, ints: [9, 1, 1], tensors: [] }] },
  {
    name: "wrong q size",
    messages: [...stepMessages(2), { type: MsgType.Q, ints: [0, 0], tensors: [f32(17)] }],
  },
  {
    name: "wrong k/v size",
    messages: [
      ...stepMessages(1),
      { type: MsgType.Q, ints: [0, 0], tensors: [f32(16)] },
      { type: MsgType.KV, ints: [0, 0], tensors: [f32(16), f32(15)] },
    ],
  },
  {
    name: "q of the wrong dtype",
    messages: [
      ...stepMessages(1),
      { type: MsgType.Q, ints: [0, 0], tensors: [{ dtype: "i32", shape: [16], data: new Int32Array(16) }] },
    ],
  },
  { name: "unknown message type", messages: [{ type: 77, ints: [1, 2, 3] }] },
  {
    name: "STEP for a sequence with no KV",
    messages: [{ type: MsgType.STEP, ints: [0, 1, 1], tensors: [i32([42]), i32([0, 1]), i32([0])] }],
  },
  {
    name: "STEP with too many tokens",
    messages: [{ type: MsgType.STEP, ints: [0, 9, 1], tensors: [i32([1]), i32([0, 9]), i32([0])] }],
  },
  {
    name: "STEP with seqStart not ending at nTokens",
    messages: [
      { type: MsgType.RESERVE, ints: [1, 2, 0] },
      { type: MsgType.STEP, ints: [0, 2, 1], tensors: [i32([1]), i32([0, 1]), i32([0, 1])] },
    ],
  },
  {
    name: "STEP position beyond the context",
    messages: [
      { type: MsgType.RESERVE, ints: [1, 2, 0] },
      { type: MsgType.STEP, ints: [0, 1, 1], tensors: [i32([1]), i32([0, 1]), i32([64])] },
    ],
  },
  { name: "STEP without tensors", messages: [{ type: MsgType.STEP, ints: [0, 1, 1] }] },
  { name: "RESERVE with wrong ints", messages: [{ type: MsgType.RESERVE, ints: [1] }] },
  {
    name: "RESERVE without its ahead (version 4's form)",
    messages: [{ type: MsgType.RESERVE, ints: [1, 2] }],
  },
  { name: "RESERVE beyond the context", messages: [{ type: MsgType.RESERVE, ints: [1, 65, 0] }] },
  { name: "RESERVE ahead beyond the context", messages: [{ type: MsgType.RESERVE, ints: [1, 60, 5] }] },
  { name: "RESERVE with a negative ahead", messages: [{ type: MsgType.RESERVE, ints: [1, 2, -1] }] },
  { name: "RELEASE with no ints", messages: [{ type: MsgType.RELEASE }] },
  // ATTACH: [seqId, n, windowFrom, block × n, windowBlock × (n − windowFrom)]; this model has no window pool.
  {
    name: "ATTACH of a block that holds no cached prefix",
    messages: [{ type: MsgType.ATTACH, ints: [1, 1, 0, 0] }],
  },
  {
    name: "ATTACH of a block beyond the pool",
    messages: [{ type: MsgType.ATTACH, ints: [1, 1, 0, 1 << 30] }],
  },
  { name: "ATTACH without blocks", messages: [{ type: MsgType.ATTACH, ints: [1] }] },
  { name: "ATTACH of zero blocks", messages: [{ type: MsgType.ATTACH, ints: [1, 0, 0, 0] }] },
  { name: "ATTACH of more blocks than it carries", messages: [{ type: MsgType.ATTACH, ints: [1, 3, 0, 0] }] },
  {
    name: "ATTACH with a window part for a cache without a window pool",
    messages: [{ type: MsgType.ATTACH, ints: [1, 1, 0, 0, 0] }],
  },
  { name: "ATTACH (version 7's form)", messages: [{ type: MsgType.ATTACH, ints: [1, 0] }] },
  {
    name: "ATTACH to a sequence holding blocks",
    messages: [
      ...stepMessages(1).slice(0, 1),
      { type: MsgType.RETAIN, ints: [1, 0, 1] },
      { type: MsgType.ATTACH, ints: [1, 1, 0, 0] },
    ],
  },
  { name: "RETAIN of a sequence with no KV", messages: [{ type: MsgType.RETAIN, ints: [9, 0, 1] }] },
  {
    name: "RETAIN past the table",
    messages: [...stepMessages(1).slice(0, 1), { type: MsgType.RETAIN, ints: [1, 3, 1] }],
  },
  {
    name: "RETAIN in a window pool the cache does not have",
    messages: [...stepMessages(1).slice(0, 1), { type: MsgType.RETAIN, ints: [1, 0, 2] }],
  },
  {
    name: "RETAIN naming no pool",
    messages: [...stepMessages(1).slice(0, 1), { type: MsgType.RETAIN, ints: [1, 0, 0] }],
  },
  {
    name: "RETAIN naming pools that do not exist",
    messages: [...stepMessages(1).slice(0, 1), { type: MsgType.RETAIN, ints: [1, 0, 4] }],
  },
  { name: "RETAIN (version 7's form)", messages: [{ type: MsgType.RETAIN, ints: [1, 0] }] },
];

describe("attention worker under fuzzed and malformed frames", () => {
  it("keeps serving a good engine while other connections send garbage", { timeout: 30_000 }, async () => {
    const service = await RemoteAttentionService.connect(
      [new AddressedWorker("fuzzed", worker.host, worker.port, TEST_TOKEN, quiet)],
      {
        partition: "head",
        geometry: resolveSizes(model, { maxTokensPerStep: 16 }).geometry,
        kvMemory: null,
        microBatches: 2,
      },
    );
    try {
      const engine = buildColocatedEngine(
        model,
        backend,
        { maxTokensPerStep: 16, pipelineDepth: 2 },
        service,
      );
      const rand = prng(1234);
      let fuzzed = 0;
      // Garbage goes in between the good connection's steps, so both share the worker's event loop.
      const res = await stepLoop(engine, storyRequests(model), async () => {
        const s = await rawSocket(worker.host, worker.port);
        s.write(randomBuffer(rand, 64 + Math.floor(rand() * 4000)));
        assert.ok(await closedWithin(s, 7000), "a connection sending random bytes is closed");
        fuzzed++;
      });
      assert.deepEqual(res.errors, []);
      assert.deepEqual(res.tokens, expected);
      assert.ok(fuzzed >= 10);
      const [stats] = await service.workerStats();
      assert.equal(stats!.usedBlocks, 0);
      alive();
    } finally {
      await service.close();
    }
  });

  it("closes unauthenticated connections: application frames before the handshake, a wrong secret", {
    timeout: 30_000,
  }, async () => {
    const s = await rawSocket(worker.host, worker.port);
    s.write(encodeFrame({ type: MsgType.CONFIGURE, control: CONFIG }));
    assert.ok(await closedWithin(s, 5000), "a CONFIGURE before the handshake closes the connection");
    const s2 = await rawSocket(worker.host, worker.port);
    s2.write(
      encodeFrame({ type: MsgType.STEP, ints: [0, 1, 1], tensors: [i32([1]), i32([0, 1]), i32([0])] }),
    );
    assert.ok(await closedWithin(s2, 5000), "a STEP before the handshake closes the connection");
    // A header with the right magic but a random body.
    const rand = prng(99);
    for (let i = 0; i < 5; i++) {
      const s3 = await rawSocket(worker.host, worker.port);
      const b = randomBuffer(rand, 4200);
      b.writeUInt32LE(0x414e4d4c, 0);
      b[4] = 1;
      s3.write(b);
      assert.ok(await closedWithin(s3, 7000), `random frame ${i} with a valid magic is closed`);
    }
    await assert.rejects(
      connectTcp({ host: worker.host, port: worker.port, secret: "not-the-secret", log: quiet }),
      HandshakeError,
    );
    alive();
  });

  for (const v of violations) {
    it(`closes an authenticated connection on a protocol violation: ${v.name}`, {
      timeout: 30_000,
    }, async () => {
      const reason = await expectClosed(v.messages, v.name);
      assert.match(reason, /attention protocol|before CONFIGURE|unknown attention message|no KV reserved/);
    });
  }

  it("closes a connection that sends attention messages before CONFIGURE", { timeout: 30_000 }, async () => {
    const c = await authed();
    await c.channel.send(stepMessages(1)[1]!);
    assert.match(await within(c.closed, 5000, "before CONFIGURE"), /before CONFIGURE/);
    alive();
  });

  it("answers a bad CONFIGURE with an error reply and keeps the connection", {
    timeout: 30_000,
  }, async () => {
    const c = await authed();
    const bad: unknown[] = [
      undefined,
      "configure",
      { ...CONFIG, version: ATTENTION_PROTOCOL_VERSION + 1 },
      { ...CONFIG, dataPlane: { segment: "../../etc/passwd", layout: 1 } },
      { ...CONFIG, dataPlane: "yes" },
      (({ dataPlane: _, ...rest }) => rest)(CONFIG),
      { ...CONFIG, numHeads: 0 },
      { ...CONFIG, headDim: 1.5 },
      { ...CONFIG, kvDtype: "f64" },
      { ...CONFIG, kvDtype: "int4" },
      { ...CONFIG, kvDtype: "int8", blockSize: 6 },
      { ...CONFIG, extra: true },
      { ...CONFIG, numHeads: 3 },
      { ...CONFIG, kvMemory: 1 },
      { ...CONFIG, maxTokens: 1 << 20, numHeads: 64, numKvHeads: 64, headDim: 128, maxTags: 64 },
      (({ maxTags: _, ...rest }) => rest)(CONFIG),
    ];
    for (const control of bad) {
      await assert.rejects(
        c.rpc.request({ type: MsgType.CONFIGURE, control }, () => undefined),
        RemoteError,
        `CONFIGURE ${JSON.stringify(control)} is refused with an error reply`,
      );
    }
    // The KV dtype's errors name it.
    const configure = (control: unknown) =>
      c.rpc.request({ type: MsgType.CONFIGURE, control }, (m) => m.control);
    await assert.rejects(configure({ ...CONFIG, kvDtype: "int4" }), /kvDtype/);
    await assert.rejects(
      configure({ ...CONFIG, kvDtype: "int8", blockSize: 6 }),
      /int8 KV cache needs a block size that is a multiple of 4, got 6/,
    );
    const int8 = (await configure({ ...CONFIG, kvDtype: "int8" })) as { numBlocks: number };
    assert.ok(int8.numBlocks > 0, "an int8 cache with blocks of 4 is configured");
    const reply = (await c.rpc.request({ type: MsgType.CONFIGURE, control: CONFIG }, (m) => m.control)) as {
      numBlocks: number;
      pid: number;
    };
    assert.equal(reply.pid, worker.child.pid, "the same connection still configures");
    assert.ok(reply.numBlocks > 0);
    // A TCP peer may not make the worker map shared memory on its host: refused, not failed.
    const asked = (await c.rpc.request(
      {
        type: MsgType.CONFIGURE,
        control: { ...CONFIG, dataPlane: { segment: "/lamina-not-there", layout: DATA_PLANE_LAYOUT } },
      },
      (m) => m.control,
    )) as { dataPlane: boolean; dataPlaneNote: string };
    assert.equal(asked.dataPlane, false);
    assert.match(asked.dataPlaneNote, /same-host/);
    await c.channel.close();
    alive();
  });

  it("survives random well-formed and random raw frames from authenticated peers", {
    timeout: 30_000,
  }, async () => {
    const rand = prng(4321);
    const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
    let closed = 0;
    for (let conn = 0; conn < 12; conn++) {
      const s = await rawAuthenticated(worker.host, worker.port, TEST_TOKEN);
      const outcome = fate(s, 6000);
      s.write(encodeFrame({ type: MsgType.CONFIGURE, requestId: 1, control: CONFIG }));
      for (let i = 0; i < 40 && !s.destroyed; i++) {
        if (conn % 4 === 3 && i === 20) {
          s.write(randomBuffer(rand, int(24, 3000)));
          continue;
        }
        const nT = int(0, 3);
        const tensors: WireTensor[] = Array.from({ length: nT }, () =>
          rand() < 0.5 ? f32(int(0, 40)) : i32(Array.from({ length: int(0, 6) }, () => int(-2, 70))),
        );
        s.write(
          encodeFrame({
            type: int(1, 12),
            flags: rand() < 0.1 ? FLAG_ERROR : 0,
            requestId: int(0, 5),
            ints: Array.from({ length: int(0, 4) }, () => int(-3, 80)),
            tensors,
          }),
        );
      }
      // Not s.end(): with allowHalfOpen off the worker would answer our FIN by closing, and every
      // connection would look closed by it. A STATS probe tells "kept open" from "still busy".
      s.write(encodeFrame({ type: MsgType.STATS, requestId: PROBE_ID }));
      const f = await outcome;
      s.destroy();
      assert.notEqual(f, "neither", `connection ${conn}: neither closed by the worker nor answered`);
      if (conn % 4 === 3) assert.equal(f, "closed", `connection ${conn}: raw bytes mid-stream close it`);
      if (f === "closed") closed++;
      alive();
    }
    assert.ok(closed >= 6, `most fuzzed connections were closed by the worker (${closed})`);
    // A fresh connection is served as before.
    const c = await configured();
    const stats = await c.rpc.request({ type: MsgType.STATS }, (m) => m.control as { totalBlocks: number });
    assert.ok(stats.totalBlocks > 0);
    await c.channel.close();
    alive();
  });
});
