import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type DecodedMessage, FrameEncoder } from "../../src/transport/codec.js";
import { FrameError } from "../../src/transport/errors.js";
import { FrameReader } from "../../src/transport/frame-reader.js";
import { DEFAULT_LIMITS, resolveLimits } from "../../src/transport/limits.js";
import { copyMessage, type Message, type ReceivedMessage } from "../../src/transport/message.js";
import { assertSameMessage, makeTensor, rng, sampleMessages } from "./helpers.js";

function encode(msg: Message, limits = DEFAULT_LIMITS): Uint8Array {
  const enc = new FrameEncoder(limits);
  enc.prepare(msg);
  const out = new Uint8Array(enc.frameBytes);
  enc.writeMeta(out, new DataView(out.buffer), 0);
  enc.writeTensorData(out, enc.metaBytes);
  return out;
}

/** Feeds `bytes` to a FrameReader in the given chunk sizes; returns deep copies of what it delivered. */
function decodeChunked(bytes: Uint8Array, sizes: () => number, limits = DEFAULT_LIMITS): ReceivedMessage[] {
  const out: ReceivedMessage[] = [];
  const reader = new FrameReader(limits, (m) => out.push(copyMessage(m)));
  for (let at = 0; at < bytes.length; ) {
    const n = Math.min(bytes.length - at, Math.max(1, sizes()));
    // A fresh, oddly offset buffer per chunk, as a socket could deliver.
    const chunk = new Uint8Array(new ArrayBuffer(n + 3), 3, n);
    chunk.set(bytes.subarray(at, at + n));
    reader.push(chunk);
    at += n;
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe("frame codec", () => {
  it("round-trips every dtype and shape, whole and split into any chunk sizes", () => {
    const msgs = sampleMessages();
    const stream = concat(msgs.map((m) => encode(m)));
    const r = rng(7);
    for (const sizes of [
      () => stream.length,
      () => 1,
      () => 5,
      () => 4093,
      () => 1 + Math.floor(r() * 3000),
    ]) {
      const got = decodeChunked(stream, sizes);
      assert.equal(got.length, msgs.length);
      for (let i = 0; i < got.length; i++) assertSameMessage(got[i]!, msgs[i]!);
    }
  });

  it("hands out views into the receive chunk without copying when a frame sits in one aligned chunk", () => {
    const bytes = encode({ type: 1, tensors: [makeTensor("f32", [16, 16], 3)] });
    let seen: DecodedMessage | null = null;
    let sameBuffer = false;
    const reader = new FrameReader(DEFAULT_LIMITS, (m) => {
      seen = m;
      sameBuffer = m.tensors[0]!.data.buffer === bytes.buffer;
    });
    reader.push(bytes);
    assert.ok(seen);
    assert.ok(sameBuffer, "tensor should be a view into the chunk");
  });

  it("rejects messages that break the limits before sending, naming the field", () => {
    const enc = new FrameEncoder(
      resolveLimits({ maxTensorBytes: 64, maxTensors: 2, maxInts: 2, maxControlBytes: 10 }),
    );
    const bad: [Message, RegExp][] = [
      [{ type: 300 }, /message\.type/],
      [{ type: 0xf3 }, /reserved/],
      [{ type: 1, flags: -1 }, /message\.flags/],
      [{ type: 1, ints: [1, 2, 3] }, /message\.ints has 3/],
      [{ type: 1, ints: [2 ** 31] }, /message\.ints\[0\]/],
      [{ type: 1, control: { long: "x".repeat(20) } }, /message\.control/],
      [{ type: 1, tensors: [makeTensor("f32", [17], 1)] }, /tensors\[0\] is 68 bytes/],
      [
        { type: 1, tensors: [{ dtype: "f32", shape: [3], data: new Float32Array(2) }] },
        /3 elements\) but 2 values/,
      ],
      [
        { type: 1, tensors: [{ dtype: "bf16", shape: [2], data: new Float32Array(2) }] },
        /must be a Uint16Array/,
      ],
      [
        { type: 1, tensors: [{ dtype: "f64" as never, shape: [1], data: new Float32Array(1) }] },
        /dtype must be/,
      ],
      [{ type: 1, tensors: [makeTensor("f32", [1, 1, 1, 1, 1, 1, 1, 1, 1], 1)] }, /rank 9/],
    ];
    for (const [msg, re] of bad)
      assert.throws(
        () => enc.prepare(msg),
        (e: Error) => e instanceof FrameError && re.test(e.message),
      );
  });

  it("rejects malformed frames with a reason: magic, version, sizes, dtype, padding, trailing bytes", () => {
    const good = encode({ type: 1, ints: [5], control: { a: 1 }, tensors: [makeTensor("f32", [3], 1)] });
    const mutate = (f: (b: Uint8Array, v: DataView) => void) => {
      const b = good.slice();
      f(b, new DataView(b.buffer));
      return b;
    };
    const metaEnd = 24 + 16 + 40; // 4 B of ints + 7 B of JSON padded to 16, one descriptor
    const cases: [Uint8Array, RegExp][] = [
      [mutate((_, v) => v.setUint32(0, 0xdeadbeef, true)), /bad magic/],
      [mutate((b) => (b[4] = 2)), /unsupported protocol version 2/],
      [mutate((_, v) => v.setUint32(12, 2 ** 31, true)), /exceeds the limit/],
      [mutate((_, v) => v.setUint32(12, 4, true)), /not a multiple of 8/],
      [mutate((_, v) => v.setUint16(16, 5000, true)), /header ints exceed/],
      [mutate((_, v) => v.setUint16(18, 100, true)), /tensors exceed/],
      [mutate((_, v) => v.setUint32(20, 100000, true)), /control payload of/],
      [mutate((b) => (b[24 + 4] = 0x7d)), /not valid JSON/],
      [mutate((b) => (b[metaEnd - 40] = 9)), /unknown dtype code 9/],
      [mutate((b) => (b[metaEnd - 39] = 9)), /rank 9/],
      [mutate((b) => (b[metaEnd - 38] = 1)), /reserved bytes/],
      [mutate((_, v) => v.setUint32(metaEnd - 32, 1000, true)), /runs past the end/],
      [mutate((_, v) => v.setUint32(metaEnd - 32, 1, true)), /beyond its last tensor/],
      [mutate((_, v) => v.setUint32(metaEnd - 28, 2, true)), /nonzero dim beyond its rank/],
    ];
    for (const [bytes, re] of cases) {
      const reader = new FrameReader(DEFAULT_LIMITS, () => assert.fail("a malformed frame was delivered"));
      assert.throws(
        () => reader.push(bytes),
        (e: Error) => e instanceof FrameError && re.test(e.message),
        String(re),
      );
    }
  });

  it("rejects an oversized frame from its header alone, before buffering it", () => {
    const limits = resolveLimits({ maxFrameBytes: 1024 });
    const header = encode({ type: 1, tensors: [makeTensor("f32", [1000], 1)] }).subarray(0, 24);
    const reader = new FrameReader(limits, () => assert.fail("delivered"));
    assert.throws(() => reader.push(header), /exceeds the limit 1024/);
  });

  it("rejects a tensor larger than maxTensorBytes even when the frame fits", () => {
    const bytes = encode({ type: 1, tensors: [makeTensor("i32", [100], 1)] });
    const reader = new FrameReader(resolveLimits({ maxTensorBytes: 100 }), () => assert.fail("delivered"));
    assert.throws(() => reader.push(bytes), /tensor 0 of 400 bytes exceeds the limit 100/);
  });
});
