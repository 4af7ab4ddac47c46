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
import { DEFAULT_LIMITS, HANDSHAKE_LIMITS } from "../../src/transport/limits.js";
import { FIRST_RESERVED_TYPE, FIXED_HEADER_BYTES } from "../../src/transport/message.js";
import { within } from "../helpers/processes.js";
import { assertSameMessage, makeTensor, rng } from "./helpers.js";

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

/**
 * Single-field corruptions of a well-formed AUTH frame, each with the reason the server must give:
 * the server checks the fixed header (magic, version, sizes against the handshake limits), then
 * the meta section (control JSON), then the message type and the AUTH contents, in that order, so
 * corrupting one field leaves exactly one thing wrong.
 */
function corruptions(auth: Buffer, r: () => number): [string, (b: Buffer) => void, RegExp][] {
  const pick = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const controlBytes = auth.readUInt32LE(20);
  const text = auth.subarray(FIXED_HEADER_BYTES, FIXED_HEADER_BYTES + controlBytes).toString("latin1");
  const macAt = FIXED_HEADER_BYTES + text.indexOf('"mac":"') + 7;
  const nonceAt = FIXED_HEADER_BYTES + text.indexOf('"nonce":"') + 9;
  const closeAt = FIXED_HEADER_BYTES + text.lastIndexOf("}");
  const hex = "0123456789abcdef";
  return [
    ["magic", (b) => (b[pick(0, 3)]! ^= pick(1, 255)), /bad magic/],
    ["version", (b) => (b[4] = pick(2, 255)), /unsupported protocol version \d+/],
    [
      "application type",
      (b) => (b[5] = pick(0, FIRST_RESERVED_TYPE - 1)),
      /message type \d+ before the handshake completed/,
    ],
    ["unknown reserved type", (b) => (b[5] = pick(0xf5, 0xff)), /unknown transport message type 0xf[5-9a-f]/],
    [
      "oversized payload length",
      (b) => b.writeUInt32LE(HANDSHAKE_LIMITS.maxFrameBytes - FIXED_HEADER_BYTES + 8 * pick(1, 1 << 20), 12),
      /frame of \d+ bytes exceeds the limit 4096/,
    ],
    [
      "unaligned payload length",
      (b) => b.writeUInt32LE(b.readUInt32LE(12) + pick(1, 7), 12),
      /payload length \d+ is not a multiple of 8/,
    ],
    ["header ints", (b) => b.writeUInt16LE(pick(1, 0xffff), 16), /\d+ header ints exceed the limit 0/],
    ["tensors", (b) => b.writeUInt16LE(pick(1, 0xffff), 18), /\d+ tensors exceed the limit 0/],
    [
      "oversized control length",
      (b) => b.writeUInt32LE(pick(HANDSHAKE_LIMITS.maxControlBytes + 1, 0x7fffffff), 20),
      /control payload of \d+ bytes exceeds the limit 2048/,
    ],
    [
      "truncated control",
      (b) => b.writeUInt32LE(pick(1, controlBytes - 1), 20),
      /control payload is not valid JSON/,
    ],
    [
      "control that is not JSON",
      (b) => (b[closeAt] = "abcdefghijklmnopqrstuvwxyz".charCodeAt(pick(0, 25))),
      /control payload is not valid JSON/,
    ],
    [
      "nonce that is not hex",
      (b) => (b[nonceAt + pick(0, 63)] = "ghijklmnopqrstuvwxyz".charCodeAt(pick(0, 19))),
      /AUTH of message type 241 is invalid/,
    ],
    [
      "another MAC",
      (b) => {
        const at = macAt + pick(0, 63);
        b[at] = hex.charCodeAt((hex.indexOf(String.fromCharCode(b[at]!)) + pick(1, 15)) % 16);
      },
      /authentication failed \(wrong secret\)/,
    ],
  ];
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

  it("closes each bad connection with its logged reason while a good connection keeps working", {
    timeout: 60_000,
  }, async () => {
    const good = await connectTcp({ host: "127.0.0.1", port: server.port, secret: SECRET });
    const msg = { type: 7, ints: [1, 2, 3], tensors: [makeTensor("bf16", [64, 8], 5)] };
    let echoes = 0;
    let echoed: (() => void) | null = null;
    good.onMessage((m) => {
      assertSameMessage(m, msg);
      echoes++;
      echoed?.();
    });
    // The good connection works in lock-step all along: each message's echo before the next one.
    let goodSent = 0;
    let stop = false;
    const goodTraffic = (async () => {
      while (!stop) {
        const back = new Promise<void>((resolve) => {
          echoed = resolve;
        });
        await good.send(msg);
        goodSent++;
        await within(back, 5000, `echo ${goodSent} on the good connection`);
      }
    })();

    try {
      const r = rng(42);
      const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
      const auth = frame(0xf1, { protocol: 1, nonce: "0".repeat(64), mac: "1".repeat(64) });
      const header = (f: (b: Buffer) => void) => {
        const b = frame(1, undefined, 1);
        f(b);
        return b;
      };
      const attacks: [string, Buffer, RegExp][] = [
        ["random bytes", bytes(200), /bad magic/],
        ["application frame before auth", frame(1, undefined), /type 1 before the handshake/],
        ["tensors before auth", frame(1, undefined, 2), /2 tensors exceed the limit 0/],
        ["oversized header", header((b) => b.writeUInt32LE(0x7ffffff0, 12)), /exceeds the limit/],
        ["wrong MAC", auth, /authentication failed/],
        ["malformed AUTH control", frame(0xf1, { protocol: 1, nonce: "zz" }), /AUTH .* invalid/],
        ["unknown reserved type", frame(0xfe, undefined), /unknown transport message type/],
        ["wrong version", header((b) => (b[4] = 9)), /unsupported protocol version 9/],
      ];
      // Three seeded corruptions of each kind, each expecting its own reason.
      const kinds = corruptions(auth, r);
      for (let i = 0; i < 3 * kinds.length; i++) {
        const [kind, corrupt, reason] = kinds[i % kinds.length]!;
        const b = Buffer.from(auth);
        corrupt(b);
        attacks.push([`${kind} (${Math.floor(i / kinds.length)})`, b, reason]);
      }
      for (const [name, payload, reason] of attacks) {
        const before = logs.length;
        const result = await throwAt(server.port, payload, 1 + Math.floor(r() * 4));
        assert.equal(result, "closed", `${name}: connection should be closed`);
        assert.match(logs.slice(before).join("\n"), reason, `${name}: logged reason`);
      }
      // A silent unauthenticated peer is dropped by the handshake timeout.
      const before = logs.length;
      assert.equal(await throwAt(server.port, Buffer.alloc(0)), "closed");
      assert.match(logs.slice(before).join("\n"), /handshake timed out after 2000 ms/);
      assert.equal(good.closed, false);
      assert.equal(server.channels.size, 1, "only the good channel is open");
    } finally {
      stop = true;
      await goodTraffic.finally(() => good.close());
    }
    assert.equal(echoes, goodSent, "every message on the good connection came back");
    assert.ok(goodSent > 10);
  });
});
