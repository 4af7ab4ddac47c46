// The native data plane's own error paths, below the engine: a malformed posting ends that
// connection's loop (and only that one) with a reason the model side reads; a full posting queue
// holds the poster back within a bound and then fails clearly; a worker process that dies is
// reported to a waiting engine long before the reply bound; a loop that fails closes its
// session's channel while the worker serves other connections.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { connect } from "node:net";
import { describe, it } from "node:test";
import { BlockAllocator } from "../../src/attention/block-allocator.js";
import { BlockMirror } from "../../src/attention/block-mirror.js";
import { DataPlaneLink, type DataPlaneShape } from "../../src/attention/data-plane-link.js";
import {
  DATA_PLANE_LAYOUT,
  type DataPlaneAddon,
  dataPlaneAddon,
} from "../../src/attention/data-plane-native.js";
import { DataPlaneServer } from "../../src/attention/data-plane-server.js";
import { KvAttention } from "../../src/attention/kv-attention.js";
import { ATTENTION_PROTOCOL_VERSION, type ConfigureRequest, MsgType } from "../../src/attention/protocol.js";
import { RemoteAttentionService } from "../../src/attention/remote-service.js";
import { type AttentionStep, AttentionWorkerLostError } from "../../src/attention/service.js";
import { SubStep } from "../../src/attention/sub-step.js";
import { AttentionWorkerSession } from "../../src/attention/worker-session.js";
import { dtypeCode } from "../../src/kernels/native-addon.js";
import { SpawnedWorker } from "../../src/placement/attention-worker-endpoints.js";
import { RpcClient } from "../../src/transport/rpc.js";
import { createShmChannelPair } from "../../src/transport/shm-channel.js";
import { shmNative } from "../../src/transport/shm-native.js";
import { connectTcp, listenTcp } from "../../src/transport/tcp.js";
import { nativeBackend } from "../helpers/backends.js";

const backend = nativeBackend();
const found = dataPlaneAddon();
if (typeof found === "string") throw new Error(`the data-plane tests need the native addon: ${found}`);
const addon: DataPlaneAddon = found;

const geometry = {
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8,
  blockSize: 4,
  kvDtype: "f32" as const,
  maxContext: 32,
  maxTokens: 8,
  maxSeqs: 4,
  slidingWindow: null,
};
const shape: DataPlaneShape = {
  numTags: 1,
  maxTokens: 8,
  maxSeqs: 4,
  maxBlocksPerSeq: 8,
  qWidth: 32,
  kvWidth: 16,
  numLayers: 2,
};

/** A model-side link and a worker loop on its own 4-block cache, in this process. */
function pair(): { link: DataPlaneLink; server: DataPlaneServer; kv: KvAttention } {
  const link = DataPlaneLink.create(addon, shape, 50);
  const kv = new KvAttention(backend, geometry, 4);
  const server = DataPlaneServer.start(addon, link.name, kv, { threads: 1, spinUs: 50 });
  return { link, server, kv };
}

/** One sequence of `n` tokens at positions 0..n-1, with blocks from a mirror allocator. */
function step(n: number, blocks = 4): { sub: SubStep; mirror: BlockAllocator } {
  const sub = new SubStep(8, 4);
  sub.reset(0);
  sub.addSeq(
    {
      microBatch: 0,
      nTokens: n,
      nSeqs: 1,
      seqIds: Int32Array.of(7),
      seqStart: Int32Array.of(0, n),
      positions: Int32Array.from({ length: n }, (_, i) => i),
    },
    0,
  );
  const mirror = new BlockAllocator(blocks, 4);
  assert.ok(mirror.reserve(7, n));
  return { sub, mirror };
}

/** In-process attention on a fresh cache with step()'s block table, prepared for its 3 tokens. */
function reference3(): { ref: KvAttention; st: AttentionStep } {
  const ref = new KvAttention(backend, geometry, 4);
  ref.allocator.reserve(7, 3);
  const st = {
    microBatch: 0,
    nTokens: 3,
    nSeqs: 1,
    seqIds: Int32Array.of(7),
    seqStart: Int32Array.of(0, 3),
    positions: Int32Array.of(0, 1, 2),
  };
  ref.prepare(st);
  return { ref, st };
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("native data plane", () => {
  it("computes one layer through the segment like in-process attention", () => {
    const { link, server, kv } = pair();
    try {
      const { sub, mirror } = step(3);
      const q = Float32Array.from({ length: 3 * 32 }, (_, i) => Math.sin(i));
      const k = Float32Array.from({ length: 3 * 16 }, (_, i) => Math.cos(i));
      const v = Float32Array.from({ length: 3 * 16 }, (_, i) => (i % 7) / 7);
      link.postStep(0, sub, mirror, 1000);
      link.postQ(0, 0, q, sub, 32, 0, 1000);
      link.postKv(0, 0, k, v, sub, 16, 0, 1000);
      assert.ok(addon.dpWait(Int32Array.of(link.id), 1, 5000) >= 0, "a reply comes");
      const out = new Float32Array(3 * 32);
      link.take(0, out, sub, 32, 0);
      // The same layer in-process on a fresh cache with the same block table.
      const { ref, st } = reference3();
      const expected = new Float32Array(3 * 32);
      ref.run(0, st, q, k, v, expected);
      for (let i = 0; i < out.length; i++) assert.ok(Math.abs(out[i]! - expected[i]!) < 1e-5, `out[${i}]`);
      const info = server.info();
      assert.equal(info.state, "running");
      assert.equal(info.layers, 1);
      void kv;
    } finally {
      server.stop();
      link.close();
    }
  });

  it("the compute µs its replies report add up to the worker's compute time", () => {
    const { link, server } = pair();
    try {
      const { sub, mirror } = step(1);
      const q = new Float32Array(32).fill(0.1);
      const kv = new Float32Array(16).fill(0.2);
      const out = new Float32Array(32);
      let reported = 0;
      const layers = 400;
      for (let i = 0; i < layers; i++) {
        if (i % 2 === 0) link.postStep(0, sub, mirror, 1000);
        link.postQ(0, i % 2, q, sub, 32, 0, 1000);
        link.postKv(0, i % 2, kv, kv, sub, 16, 0, 1000);
        assert.ok(addon.dpWait(Int32Array.of(link.id), 1, 5000) >= 0, "a reply comes");
        reported += link.take(0, out, sub, 32, 0);
      }
      const info = server.info();
      assert.equal(info.layers, layers);
      // A layer takes well under a µs here: whole µs a reply, each floored, would report none
      // of it.
      const total = info.computeSeconds * 1e6;
      assert.ok(total > 20, `the worker computed for ${total} µs`);
      assert.ok(Math.abs(reported - total) <= 1, `reported ${reported} µs of ${total.toFixed(1)}`);
    } finally {
      server.stop();
      link.close();
    }
  });

  it("postKvTake posts and takes in one call, and leaves a late reply to the usual wait", () => {
    // Spin budgets of 50 µs (the reply comes within it) and 0 (it never does: the wait and
    // take after dpPostKv land it); both give in-process attention's output.
    for (const spinUs of [50, 0]) {
      const link = DataPlaneLink.create(addon, shape, spinUs);
      const kv = new KvAttention(backend, geometry, 4);
      const server = DataPlaneServer.start(addon, link.name, kv, { threads: 1, spinUs: 50 });
      try {
        const { sub, mirror } = step(3);
        const { ref, st } = reference3();
        let late = 0;
        for (let layer = 0; layer < 2; layer++) {
          const q = Float32Array.from({ length: 3 * 32 }, (_, i) => Math.sin(i + layer));
          const k = Float32Array.from({ length: 3 * 16 }, (_, i) => Math.cos(i * layer));
          const v = Float32Array.from({ length: 3 * 16 }, (_, i) => ((i + layer) % 7) / 7);
          if (layer === 0) link.postStep(0, sub, mirror, 1000);
          link.postQ(0, layer, q, sub, 32, 0, 1000);
          const out = new Float32Array(3 * 32);
          if (link.postKvTake(0, layer, k, v, sub, 16, 0, 1000, out, 32, 0) < 0) {
            late++;
            assert.ok(addon.dpWait(Int32Array.of(link.id), 1, 5000) >= 0, "a reply comes");
            assert.ok(link.take(0, out, sub, 32, 0) >= 0);
          }
          const expected = new Float32Array(3 * 32);
          ref.run(layer, st, q, k, v, expected);
          for (let i = 0; i < out.length; i++)
            assert.ok(Math.abs(out[i]! - expected[i]!) < 1e-5, `spin ${spinUs}, layer ${layer}, out[${i}]`);
        }
        if (spinUs === 0) assert.equal(late, 2, "with no spin budget, every reply is left to the wait");
        assert.equal(server.info().layers, 2);
      } finally {
        server.stop();
        link.close();
      }
    }
  });

  it("postKvTake checks every argument before it posts", () => {
    const { link, server } = pair();
    try {
      const { sub, mirror } = step(2);
      link.postStep(0, sub, mirror, 1000);
      link.postQ(0, 0, new Float32Array(64), sub, 32, 0, 1000);
      const kv = new Float32Array(32);
      // An output of one row for two: refused, and no KV was posted.
      assert.throws(
        () => link.postKvTake(0, 0, kv, kv, sub, 16, 0, 1000, new Float32Array(32), 32, 0),
        /dpPostKvTake: rows\[1\] = 1 is outside the tensor's 1 rows/,
      );
      assert.throws(
        () => addon.dpPostKvTake(link.id, 0, 0, kv, kv, null, 2, 16, 0, 1000, new Float32Array(64), 16, 0),
        /dpPostKvTake: columns exceed the row width/,
      );
      const out = new Float32Array(64);
      if (link.postKvTake(0, 0, kv, kv, sub, 16, 0, 1000, out, 32, 0) < 0) {
        assert.ok(addon.dpWait(Int32Array.of(link.id), 1, 5000) >= 0, "a reply comes");
        link.take(0, out, sub, 32, 0);
      }
      // Had a refused call posted its KV, this one would be the layer's second KV (out of order).
      assert.equal(server.info().state, "running");
      assert.equal(server.info().layers, 1, "one KV posted: the refused calls posted none");
    } finally {
      server.stop();
      link.close();
    }
  });

  it("a malformed posting fails that loop only, and the model side reads why", () => {
    const a = pair();
    const b = pair();
    try {
      const { sub, mirror } = step(2);
      // A block table entry outside the worker's cache.
      const bad = new BlockAllocator(64, 4);
      for (let i = 0; i < 10; i++) bad.reserve(100 + i, 4);
      bad.reserve(7, 2);
      a.link.postStep(0, sub, bad, 1000);
      assert.ok(addon.dpWait(Int32Array.of(a.link.id), 1, 5000) <= -2 || a.link.failure() !== "");
      assert.match(a.link.failure(), /block table entry 0 .* is outside the cache/);
      assert.equal(a.server.info().state, "failed");
      // The other connection's loop still serves.
      b.link.postStep(0, sub, mirror, 1000);
      b.link.postQ(0, 1, new Float32Array(64), sub, 32, 0, 1000);
      b.link.postKv(0, 1, new Float32Array(32), new Float32Array(32), sub, 16, 0, 1000);
      assert.ok(addon.dpWait(Int32Array.of(b.link.id), 1, 5000) >= 0);
      assert.equal(b.server.info().state, "running");
      // A posting out of order (KV with no Q) and a layer out of range fail too.
      const c = pair();
      try {
        c.link.postStep(0, sub, mirror, 1000);
        c.link.postKv(0, 0, new Float32Array(32), new Float32Array(32), sub, 16, 0, 1000);
        assert.ok(addon.dpWait(Int32Array.of(c.link.id), 1, 5000) <= -2);
        assert.match(c.link.failure(), /KV for layer 0 before its Q/);
      } finally {
        c.server.stop();
        c.link.close();
      }
      // A KV's layer is range-checked before its order (right after a STEP no Q is pending, and the
      // fuzzer found a KV for layer −1, written into the queue directly, indexing the caches at −1;
      // this client refuses −1 itself, so a layer past the last stands in for it here).
      const d = pair();
      try {
        d.link.postStep(0, sub, mirror, 1000);
        d.link.postKv(0, 99, new Float32Array(32), new Float32Array(32), sub, 16, 0, 1000);
        assert.ok(addon.dpWait(Int32Array.of(d.link.id), 1, 5000) <= -2);
        assert.match(d.link.failure(), /KV for layer 99 is out of range/);
      } finally {
        d.server.stop();
        d.link.close();
      }
    } finally {
      for (const p of [a, b]) {
        p.server.stop();
        p.link.close();
      }
    }
  });

  it("window layers in a pool of their own: the STEP must carry that pool's tables, each entry inside it", () => {
    // Layer 0 has the window (its KV in a 4-block pool of its own: one sequence, window 4, steps
    // of 8), layer 1 is global with a soft-cap: the settings go to the loop once, at dpServe.
    const windowed = { ...geometry, maxSeqs: 1, slidingWindow: 4, slidingLayers: [true, false], softcap: 2 };
    const serve = () => {
      const link = DataPlaneLink.create(addon, shape, 50);
      const kv = new KvAttention(backend, windowed, 8, true);
      assert.equal(kv.windowAllocator?.numBlocks, 4);
      return { link, server: DataPlaneServer.start(addon, link.name, kv, { threads: 1, spinUs: 50 }) };
    };
    const { sub } = step(3);
    const cases = [
      // The global mirror alone: no window tables posted.
      { tables: step(3).mirror, why: /lacks the window-pool tables/ },
      // A window-pool table whose entry is a block of the global pool's range, past the window pool's 4.
      {
        tables: (() => {
          const m = new BlockMirror(windowed, 8, 4);
          const far = new BlockAllocator(8, 4);
          for (let i = 0; i < 5; i++) far.reserve(100 + i, 4);
          far.reserve(7, 3);
          m.reserve(7, 3);
          return { table: (id: number) => m.table(id), window: far };
        })(),
        why: /window-pool table entry 0 of sequence row 0 = 5 is outside the cache/,
      },
    ];
    for (const c of cases) {
      const { link, server } = serve();
      try {
        link.postStep(0, sub, c.tables, 1000);
        assert.ok(addon.dpWait(Int32Array.of(link.id), 1, 5000) <= -2 || link.failure() !== "");
        assert.match(link.failure(), c.why);
        assert.equal(server.info().state, "failed");
      } finally {
        server.stop();
        link.close();
      }
    }
    // The right tables from the model side's mirror of both pools: the loop computes both layers.
    const { link, server } = serve();
    try {
      const m = new BlockMirror(windowed, 8, 4);
      assert.ok(m.reserve(7, 3));
      link.postStep(0, sub, m, 1000);
      for (const layer of [0, 1]) {
        link.postQ(0, layer, new Float32Array(3 * 32).fill(0.5), sub, 32, 0, 1000);
        link.postKv(
          0,
          layer,
          new Float32Array(3 * 16).fill(0.25),
          new Float32Array(3 * 16),
          sub,
          16,
          0,
          1000,
        );
        assert.ok(addon.dpWait(Int32Array.of(link.id), 1, 5000) >= 0, link.failure());
        link.take(0, new Float32Array(3 * 32), sub, 32, 0);
      }
      assert.deepEqual([server.info().state, server.info().layers], ["running", 2]);
    } finally {
      server.stop();
      link.close();
    }
  });

  it("the per-layer settings are checked once, at dpServe, by name", () => {
    const link = DataPlaneLink.create(addon, shape, 50);
    const kv = new KvAttention(backend, geometry, 4);
    const segment = shmNative().open(link.name);
    const serve = (
      windows: Int32Array,
      scales: Float32Array,
      softcaps: Float32Array,
      windowBlocks = 0,
      sinks = new Float32Array(0),
    ) =>
      addon.dpServe(
        segment,
        kv.caches.map((c) => c.k),
        kv.caches.map((c) => c.v),
        dtypeCode("f32", "test"),
        4,
        windowBlocks,
        4,
        2,
        8,
        4,
        32,
        windows,
        scales,
        softcaps,
        1,
        50,
        [],
        [],
        sinks,
      );
    const two = (a: number, b: number) => Float32Array.of(a, b);
    try {
      assert.throws(
        () => serve(Int32Array.of(0, 0), Float32Array.of(0.3), two(0, 0)),
        /scales has 1 elements, needs at least 2/,
      );
      assert.throws(
        () => serve(Int32Array.of(0, 0, 0), two(0.3, 0.3), two(0, 0)),
        /windows has 3 entries for 2 layers/,
      );
      assert.throws(
        () => serve(Int32Array.of(-1, 0), two(0.3, 0.3), two(0, 0)),
        /layer 0's window is negative/,
      );
      assert.throws(() => serve(Int32Array.of(0, 0), two(0.3, 0), two(0, 0)), /layer 1's scale or soft-cap/);
      assert.throws(
        () => serve(Int32Array.of(0, 0), two(0.3, 0.3), two(Number.NaN, 0)),
        /layer 0's scale or soft-cap/,
      );
      // A window pool needs a windowed layer to hold (its cache must cover that pool's blocks).
      assert.throws(
        () => serve(Int32Array.of(0, 0), two(0.3, 0.3), two(0, 0), 2),
        /window pool without a windowed layer/,
      );
      // Attention sinks: one logit per layer and head (2 layers of 4 heads here), all finite.
      assert.throws(
        () => serve(Int32Array.of(0, 0), two(0.3, 0.3), two(0, 0), 0, new Float32Array(4)),
        /sinks has 4 entries for 2 layers of 4 heads/,
      );
      assert.throws(
        () => serve(Int32Array.of(0, 0), two(0.3, 0.3), two(0, 0), 0, new Float32Array(8).fill(Number.NaN)),
        /attention sink is not finite/,
      );
    } finally {
      link.close();
    }
  });

  it("a full posting queue holds the poster back, then fails clearly", () => {
    const link = DataPlaneLink.create(addon, shape, 0);
    try {
      const { sub, mirror } = step(1);
      // No worker takes postings: four fit the queue, the fifth waits out its bound.
      link.postStep(0, sub, mirror, 50);
      for (let i = 0; i < 3; i++) link.postQ(0, 0, new Float32Array(32), sub, 32, 0, 50);
      const t0 = performance.now();
      assert.throws(
        () => link.postQ(0, 0, new Float32Array(32), sub, 32, 0, 80),
        /took no posting of micro-batch 0 within 80 ms/,
      );
      assert.ok(performance.now() - t0 >= 75, "the poster waited for room");
    } finally {
      link.close();
    }
  });

  it("rejects bad arguments by name instead of reading out of bounds", () => {
    const link = DataPlaneLink.create(addon, shape, 0);
    try {
      const { sub } = step(2);
      sub.rows[1] = 99;
      assert.throws(
        () => link.postQ(0, 0, new Float32Array(64), sub, 32, 0, 50),
        /rows\[1\] = 99 is outside/,
      );
      assert.throws(
        () => addon.dpPostQ(link.id, 5, 0, new Float32Array(64), null, 1, 32, 0, 50),
        /micro-batch 5 is outside/,
      );
      assert.throws(() => addon.dpTake(link.id, 0, new Float32Array(64), null, 1, 32, 0), /no OUT is ready/);
      assert.throws(() => addon.dpWait(Int32Array.of(999), 1, 10), /client 999 is not open/);
    } finally {
      link.close();
    }
  });

  it("a failed loop closes its session's channel; the worker serves other connections", async () => {
    const [engineA, workerA] = createShmChannelPair();
    const [engineB, workerB] = createShmChannelPair();
    const log = () => {};
    const logA: string[] = [];
    // 8 KV blocks of 1 KiB each: a block id past 7 is outside the cache.
    new AttentionWorkerSession(workerA, backend, { kvMemory: 8 << 10, log: (l) => logA.push(l) });
    new AttentionWorkerSession(workerB, backend, { kvMemory: 8 << 10, log });
    const link = DataPlaneLink.create(addon, shape, 0);
    try {
      const config: ConfigureRequest = {
        version: ATTENTION_PROTOCOL_VERSION,
        ...geometry,
        kvMemory: null,
        maxTags: 1,
        dataPlane: { segment: link.name, layout: DATA_PLANE_LAYOUT },
      };
      const reply = (await new RpcClient(engineA).request(
        { type: MsgType.CONFIGURE, control: config },
        (m) => m.control,
      )) as { dataPlane: boolean };
      assert.equal(reply.dataPlane, true);
      const { sub } = step(1);
      const bad = new BlockAllocator(64, 4);
      for (let i = 0; i < 20; i++) bad.reserve(100 + i, 4);
      bad.reserve(7, 1);
      link.postStep(0, sub, bad, 1000);
      await until("the failed loop to close the channel", () => engineA.closed);
      assert.ok(
        logA.some((l) => /data plane failed: .*block table entry/.test(l)),
        `the worker says why: ${logA.join(" | ")}`,
      );
      const other = (await new RpcClient(engineB).request(
        { type: MsgType.CONFIGURE, control: { ...config, dataPlane: null } },
        (m) => m.control,
      )) as { numBlocks: number };
      assert.ok(other.numBlocks > 0, "the other connection still configures");
    } finally {
      link.close();
      await engineA.close();
      await engineB.close();
    }
  });

  it("over TCP: a wrong token is ignored, a malformed frame ends that connection only", async () => {
    const secret = "data-plane-test-secret-0123";
    const logs: string[] = [];
    const log = () => {};
    const server = await listenTcp({ host: "127.0.0.1", port: 0, secret, log }, (ch) => {
      new AttentionWorkerSession(ch, backend, { kvMemory: 8 << 10, log: (l) => logs.push(l) });
    });
    const a = await connectTcp({ host: "127.0.0.1", port: server.port, secret, log });
    const b = await connectTcp({ host: "127.0.0.1", port: server.port, secret, log });
    try {
      const config: ConfigureRequest = {
        version: ATTENTION_PROTOCOL_VERSION,
        ...geometry,
        kvMemory: null,
        maxTags: 1,
        dataPlane: { tcp: true, layout: DATA_PLANE_LAYOUT },
      };
      const reply = (await new RpcClient(a).request(
        { type: MsgType.CONFIGURE, control: config },
        (m) => m.control,
      )) as {
        dataPlane: boolean;
        dataPlaneTcp: { port: number; token: string };
      };
      assert.equal(reply.dataPlane, true);
      const send = async (bytes: Buffer) => {
        const sock = connect({ host: "127.0.0.1", port: reply.dataPlaneTcp.port });
        await once(sock, "connect");
        sock.write(bytes);
        return sock;
      };
      // Someone without the token (32 bytes and a peer id): dropped, and the socket still waits
      // for the model side.
      const intruder = await send(Buffer.alloc(36, "x"));
      await once(intruder, "close");
      assert.equal(a.closed, false);
      // The model side with a frame whose payload size does not match its counts.
      const head = Buffer.alloc(28);
      for (const [i, v] of [0x4650444c, 2, 0, 0, 1, 0, 12345].entries()) head.writeInt32LE(v, 4 * i);
      const sock = await send(Buffer.concat([Buffer.from(reply.dataPlaneTcp.token), Buffer.alloc(4), head]));
      await until("the malformed frame to close the connection", () => a.closed);
      assert.ok(
        logs.some((l) => /data plane failed: data-plane frame of kind 2 with 12345 bytes/.test(l)),
        `the worker says why: ${logs.join(" | ")}`,
      );
      sock.destroy();
      const other = (await new RpcClient(b).request(
        { type: MsgType.CONFIGURE, control: { ...config, dataPlane: null } },
        (m) => m.control,
      )) as { numBlocks: number };
      assert.ok(other.numBlocks > 0, "the worker's other connection still configures");
    } finally {
      await a.close();
      await b.close();
      await server.close();
    }
  });

  it("a killed worker process is reported to a waiting engine within a fraction of the reply bound", {
    timeout: 60_000,
  }, async () => {
    const worker = new SpawnedWorker("w", {
      transport: "shm",
      kvMemory: 16 << 20,
      threads: 1,
      log: () => {},
    });
    const svc = await RemoteAttentionService.connect([worker], {
      partition: "head",
      geometry,
      kvMemory: null,
      microBatches: 1,
      replyTimeoutMs: 20_000,
    });
    try {
      assert.notEqual(svc.drive, null, "the spawned worker took the data plane");
      assert.ok(svc.reserve(7, 4));
      const st = {
        microBatch: 0,
        nTokens: 1,
        nSeqs: 1,
        seqIds: Int32Array.of(7),
        seqStart: Int32Array.of(0, 1),
        positions: Int32Array.of(0),
      };
      const q = new Float32Array(32);
      const kv = new Float32Array(16);
      const out = new Float32Array(32);
      svc.beginLayer(0, st, q);
      svc.finishLayer(0, st, kv, kv, out);
      // Stop the worker, post the next layer, kill it while the engine waits.
      process.kill(worker.pid!, "SIGSTOP");
      svc.beginLayer(1, st, q);
      // The wait blocks this thread (no timer could fire): another process kills the worker.
      const killer = spawn("sh", ["-c", `sleep 0.2; kill -KILL ${worker.pid}`], { stdio: "ignore" });
      const t0 = performance.now();
      assert.throws(() => svc.finishLayer(1, st, kv, kv, out), AttentionWorkerLostError);
      const waited = performance.now() - t0;
      assert.ok(waited < 20_000 / 4, `reported after ${waited.toFixed(0)} ms`);
      await once(killer, "exit");
    } finally {
      await svc.close();
    }
  });
});
