import assert from "node:assert/strict";
import { once } from "node:events";
import { connect } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  type Channel,
  ChannelClosedError,
  type CloseInfo,
  connectTcp,
  copyMessage,
  errorReply,
  FrameError,
  HandshakeError,
  listenTcp,
  type ReceivedMessage,
  RemoteError,
  RequestTimeoutError,
  RpcClient,
  type TcpServer,
} from "../../src/transport/index.js";
import { forkGroup, within } from "../helpers/processes.js";
import { assertSameMessage, makeTensor, sampleMessages, waitFor } from "./helpers.js";

const SECRET = "test-secret-0123456789";
const here = path.dirname(fileURLToPath(import.meta.url));

/** An echo server: every application message comes back as is (copied: the views die with the callback). */
async function echoServer(limits?: { maxFrameBytes?: number; maxTensorBytes?: number }) {
  const logs: string[] = [];
  const channels: Channel[] = [];
  const server = await listenTcp({ port: 0, secret: SECRET, limits, log: (l) => logs.push(l) }, (ch) => {
    channels.push(ch);
    ch.onMessage((m) => {
      if (m.type === 99) {
        ch.send(errorReply(m, "no such method")).catch(() => {});
        return;
      }
      if (m.type === 98) return; // never answered: for timeouts
      ch.send(copyMessage(m)).catch(() => {});
    });
  });
  return { server, logs, channels };
}

function collect(ch: Channel): ReceivedMessage[] {
  const got: ReceivedMessage[] = [];
  ch.onMessage((m) => got.push(copyMessage(m)));
  return got;
}

describe("tcp transport", () => {
  let env: Awaited<ReturnType<typeof echoServer>>;
  let server: TcpServer;
  before(async () => {
    env = await echoServer({ maxFrameBytes: 8 << 20, maxTensorBytes: 4 << 20 });
    server = env.server;
  });
  after(async () => {
    await server.close();
  });

  it("round-trips every dtype and shape, in order", async () => {
    const ch = await connectTcp({ host: "127.0.0.1", port: server.port, secret: SECRET });
    const got = collect(ch);
    const msgs = sampleMessages();
    for (const m of msgs) await ch.send(m);
    await waitFor(() => got.length === msgs.length, "echoes");
    for (let i = 0; i < got.length; i++) assertSameMessage(got[i]!, msgs[i]!);
    await ch.close();
  });

  it("carries frames near the limit, refuses one over it locally, and a receiver with smaller limits closes", async () => {
    const ch = await connectTcp({
      host: "127.0.0.1",
      port: server.port,
      secret: SECRET,
      limits: { maxFrameBytes: 16 << 20, maxTensorBytes: 8 << 20 },
    });
    const got = collect(ch);
    // Two tensors of 4 MiB - 64 B each plus 104 B of meta: 24 B under the server's 8 MiB frame limit.
    const n = (4 << 20) / 4 - 16;
    const big = { type: 1, tensors: [makeTensor("f32", [n], 1), makeTensor("i32", [n], 2)] };
    await ch.send(big);
    await waitFor(() => got.length === 1, "large echo", 20000);
    assertSameMessage(got[0]!, big);
    // This side allows it (16 MiB), the server (8 MiB) does not: the server closes with a reason.
    const closed = new Promise<CloseInfo>((resolve) => ch.onClose(resolve));
    await ch.send({
      type: 1,
      tensors: [makeTensor("f32", [n], 1), makeTensor("f32", [n], 2), makeTensor("f32", [16], 3)],
    });
    const info = await closed;
    assert.match(info.reason, /exceeds the limit/);
    assert.ok(env.logs.some((l) => /exceeds the limit/.test(l)));

    const small = await connectTcp({
      host: "127.0.0.1",
      port: server.port,
      secret: SECRET,
      limits: { maxTensorBytes: 1024 },
    });
    await assert.rejects(small.send({ type: 1, tensors: [makeTensor("f32", [257], 1)] }), FrameError);
    assert.equal(small.closed, false, "a locally refused message leaves the channel open");
    await small.close();
  });

  it("rejects a wrong secret and a wrong protocol version", async () => {
    await assert.rejects(
      connectTcp({ host: "127.0.0.1", port: server.port, secret: "wrong" }),
      (e: Error) => e instanceof HandshakeError && /authentication failed/.test(e.message),
    );
    assert.ok(env.logs.some((l) => /wrong secret/.test(l)));
    // A client speaking protocol 2: a fixed header with version byte 2.
    const sock = connect(server.port, "127.0.0.1");
    await once(sock, "connect");
    const header = Buffer.alloc(24);
    header.writeUInt32LE(0x414e4d4c, 0);
    header[4] = 2;
    header[5] = 0xf1;
    sock.write(header);
    sock.resume();
    await once(sock, "close");
    assert.ok(env.logs.some((l) => /unsupported protocol version 2/.test(l)));
  });

  it("applies backpressure: a paused reader stalls the writer instead of growing its memory", async () => {
    let serverSide: (Channel & { pause(): void; resume(): void }) | null = null;
    let received = 0;
    const srv = await listenTcp({ port: 0, secret: SECRET, log: () => {} }, (ch) => {
      serverSide = ch as typeof serverSide;
      serverSide!.pause();
      ch.onMessage(() => received++);
    });
    try {
      const ch = await connectTcp({ host: "127.0.0.1", port: srv.port, secret: SECRET });
      await waitFor(() => serverSide !== null, "server channel");
      const frame = { type: 1, tensors: [makeTensor("f32", [256 * 1024], 1)] }; // 1 MiB
      let sent = 0;
      let maxQueued = 0;
      const writer = (async () => {
        for (let i = 0; i < 64; i++) {
          await ch.send(frame);
          sent++;
          maxQueued = Math.max(maxQueued, ch.writeBufferBytes);
        }
      })();
      // A send resolves once the kernel has taken its bytes, so with the reader paused the writer
      // ends up waiting on one for good: wait until a send has stayed pending across 20 polls.
      let writerDone = false;
      const finished = () => {
        writerDone = true;
      };
      writer.then(finished, finished);
      let last = -1;
      let still = 0;
      await waitFor(
        () => {
          if (writerDone) return true;
          still = sent === last ? still + 1 : 0;
          last = sent;
          return still >= 20;
        },
        "the writer to stall",
        20000,
      );
      const stalledAt = sent;
      assert.ok(!writerDone, `writer should stall while the reader is paused (it sent all ${sent} MiB)`);
      assert.ok(stalledAt < 40, `writer should stall while the reader is paused (sent ${stalledAt} MiB)`);
      assert.ok(
        ch.writeBufferBytes <= 2 * (1 << 20) + 4096,
        `queued ${ch.writeBufferBytes} bytes in user space`,
      );
      serverSide!.resume();
      await writer;
      await waitFor(() => received === 64, "all frames after resume", 20000);
      assert.ok(maxQueued <= 2 * (1 << 20) + 4096, `queued at most ${maxQueued} bytes`);
      await ch.close();
    } finally {
      await srv.close();
    }
  });

  it("RpcClient correlates replies, reports remote errors and timeouts", async () => {
    const rpc = new RpcClient(await connectTcp({ host: "127.0.0.1", port: server.port, secret: SECRET }));
    const replies = await Promise.all(
      [1, 2, 3].map((k) =>
        rpc.request(
          { type: 5, ints: [k], tensors: [makeTensor("f32", [k], k)] },
          (r) => r.ints[0]! * 10 + r.tensors[0]!.data.length,
        ),
      ),
    );
    assert.deepEqual(replies, [11, 22, 33]);
    await assert.rejects(
      rpc.request({ type: 99 }, () => 0),
      (e: Error) => e instanceof RemoteError && /no such method/.test(e.message),
    );
    await assert.rejects(
      rpc.request({ type: 98 }, () => 0, 100),
      RequestTimeoutError,
    );
    assert.equal(rpc.inFlight, 0);
    await rpc.channel.close();
  });

  it("detects a dead peer: pending requests fail with ChannelClosedError, other connections live on", {
    timeout: 30_000,
  }, async () => {
    let serverSide: Channel | null = null;
    const srv = await listenTcp({ port: 0, secret: SECRET, log: () => {} }, (ch) => {
      serverSide = ch;
      ch.onMessage(() => {}); // never answers
    });
    const peer = forkGroup(path.join(here, "fixtures/peer.js"), ["tcp-echo", String(server.port), SECRET], {
      stdio: ["ignore", "ignore", "pipe", "ipc"],
    });
    try {
      await within(once(peer.child, "message"), 10000, "the echo peer's ready message");
      const rpcCh = await connectTcp({ host: "127.0.0.1", port: srv.port, secret: SECRET });
      const rpc = new RpcClient(rpcCh, { timeoutMs: 0 });
      const pending = rpc.request({ type: 1 }, () => 0);
      await waitFor(() => serverSide !== null, "server channel");
      const serverClosed = new Promise<CloseInfo>((resolve) => serverSide!.onClose(resolve));
      // The echo server's channel to the child dies with the child.
      const echoSide = env.channels.at(-1)!;
      const echoClosed = new Promise<CloseInfo>((resolve) => echoSide.onClose(resolve));
      peer.child.kill("SIGKILL");
      assert.equal((await echoClosed).local, false);
      // Now the RPC peer goes away too: the pending request fails instead of hanging.
      const failed = assert.rejects(pending, ChannelClosedError);
      await srv.close();
      await failed;
      await serverClosed;
      // The echo server still serves others.
      const ch = await connectTcp({ host: "127.0.0.1", port: server.port, secret: SECRET });
      const got = collect(ch);
      await ch.send({ type: 2, ints: [42] });
      await waitFor(() => got.length === 1, "echo after peer death");
      await ch.close();
    } finally {
      await peer.stop();
      await srv.close();
    }
  });

  it("declares a silent peer dead after peerTimeoutMs", async () => {
    const srv = await listenTcp({ port: 0, secret: SECRET, heartbeatMs: 0, log: () => {} }, (ch) =>
      ch.onMessage(() => {}),
    );
    try {
      const ch = await connectTcp({
        host: "127.0.0.1",
        port: srv.port,
        secret: SECRET,
        heartbeatMs: 0,
        peerTimeoutMs: 150,
      });
      const info = await new Promise<CloseInfo>((resolve) => ch.onClose(resolve));
      assert.match(info.reason, /peer silent/);
    } finally {
      await srv.close();
    }
  });
});
