import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { FrameEncoder } from "../../src/transport/codec.js";
import {
  type Channel,
  connectTcp,
  copyMessage,
  listenTcp,
  type TcpServer,
} from "../../src/transport/index.js";
import { DEFAULT_LIMITS } from "../../src/transport/limits.js";
import { assertSameMessage, makeTensor, rng, waitFor } from "./helpers.js";

const SECRET = "fuzz-secret";

function frame(type: number, control: unknown, tensors = 0): Buffer {
  const enc = new FrameEncoder(DEFAULT_LIMITS);
  enc.prepare(
    { type, control, tensors: Array.from({ length: tensors }, (_, i) => makeTensor("f32", [3], i)) },
    true,
  );
  const out = Buffer.alloc(enc.frameBytes);
  enc.writeMeta(out, new DataView(out.buffer, out.byteOffset, out.length), 0);
  enc.writeTensorData(out, enc.metaBytes);
  return out;
}

/** Connects a raw socket, writes `payload`, and resolves when the server hangs up (or after 3 s). */
async function throwAt(port: number, payload: Buffer, pieces = 1): Promise<"closed" | "open"> {
  const sock: Socket = connect(port, "127.0.0.1");
  sock.on("error", () => {});
  await once(sock, "connect");
  sock.resume();
  const step = Math.ceil(payload.length / pieces);
  for (let at = 0; at < payload.length; at += step) sock.write(payload.subarray(at, at + step));
  const closed = once(sock, "close").then(() => "closed" as const);
  const timeout = new Promise<"open">((r) => setTimeout(() => r("open"), 3000).unref());
  const result = await Promise.race([closed, timeout]);
  sock.destroy();
  return result;
}

describe("tcp server under hostile input", () => {
  let server: TcpServer;
  const logs: string[] = [];
  before(async () => {
    server = await listenTcp(
      { port: 0, secret: SECRET, handshakeTimeoutMs: 2000, log: (l) => logs.push(l) },
      (ch: Channel) => ch.onMessage((m) => ch.send(copyMessage(m)).catch(() => {})),
    );
  });
  after(async () => {
    await server.close();
  });

  it("closes each bad connection with a logged reason while a good connection keeps working", async () => {
    const good = await connectTcp({ host: "127.0.0.1", port: server.port, secret: SECRET });
    let echoes = 0;
    const msg = { type: 7, ints: [1, 2, 3], tensors: [makeTensor("bf16", [64, 8], 5)] };
    good.onMessage((m) => {
      assertSameMessage(m, msg);
      echoes++;
    });
    let goodSent = 0;
    let stop = false;
    const goodTraffic = (async () => {
      while (!stop) {
        await good.send(msg);
        goodSent++;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();

    const r = rng(42);
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
    const hello = frame(0xf1, { protocol: 1, nonce: "0".repeat(64), mac: "1".repeat(64) });
    const header = (f: (b: Buffer) => void) => {
      const b = frame(1, undefined, 1);
      f(b);
      return b;
    };
    const attacks: [string, Buffer, RegExp][] = [
      ["random bytes", bytes(200), /bad magic|exceeds|version|multiple/],
      ["application frame before auth", frame(1, undefined), /type 1 before the handshake/],
      ["tensors before auth", frame(1, undefined, 2), /2 tensors exceed the limit 0/],
      ["oversized header", header((b) => b.writeUInt32LE(0x7ffffff0, 12)), /exceeds the limit/],
      ["wrong MAC", hello, /authentication failed/],
      ["malformed AUTH control", frame(0xf1, { protocol: 1, nonce: "zz" }), /AUTH .* invalid/],
      ["unknown reserved type", frame(0xfe, undefined), /unknown transport message type/],
      ["wrong version", header((b) => (b[4] = 9)), /unsupported protocol version 9/],
    ];
    for (let i = 0; i < 30; i++) {
      // Random mutations of a valid HELLO-sized frame.
      const b = Buffer.from(hello);
      for (let k = 0; k < 4; k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      attacks.push([`mutated ${i}`, b, /./]);
    }
    for (const [name, payload, reason] of attacks) {
      const before = logs.length;
      const result = await throwAt(server.port, payload, 1 + Math.floor(r() * 4));
      assert.equal(result, "closed", `${name}: connection should be closed`);
      const newLogs = logs.slice(before).join("\n");
      assert.match(newLogs, reason, `${name}: logged reason`);
    }
    // A silent unauthenticated peer is dropped by the handshake timeout.
    assert.equal(await throwAt(server.port, Buffer.alloc(0)), "closed");
    stop = true;
    await goodTraffic;
    await waitFor(() => echoes === goodSent, "good connection echoes");
    assert.ok(goodSent > 10);
    assert.equal(good.closed, false);
    assert.equal(server.channels.size, 1, "only the good channel is open");
    await good.close();
  });
});
