// The model plane's frames over TCP (native/kernels/src/plane_net.cpp), process to process as
// between the front end and model workers: ranges land, then counters, then the doorbell; a stale
// frame (behind its guard) is dropped; wrong tokens, other segment sizes and malformed frames are
// refused with the reason, and leave the receiver serving its other links.
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect } from "node:net";
import { describe, it } from "node:test";
import { PlaneFrame, PlaneNet } from "../../src/runtime/plane-net.js";

const TOKEN = "0123456789abcdef0123456789abcdef";
const BYTES = 1 << 16;

async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const t0 = performance.now();
  while (!ok()) {
    if (performance.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Two copies, B listening and A linked to it as peer 0. */
function pair(): {
  a: PlaneNet;
  b: PlaneNet;
  bufA: ArrayBuffer;
  bufB: ArrayBuffer;
  port: number;
  close(): void;
} {
  const bufA = new ArrayBuffer(BYTES);
  const bufB = new ArrayBuffer(BYTES);
  const a = PlaneNet.open(bufA, TOKEN, 0, 2000);
  const b = PlaneNet.open(bufB, TOKEN, 1, 2000);
  const port = b.listen("127.0.0.1");
  a.connect(1, "127.0.0.1", port);
  return {
    a,
    b,
    bufA,
    bufB,
    port,
    close() {
      a.close();
      b.close();
    },
  };
}

/** The handshake a peer sends: token, its id, a reserved word, the segment's size. */
function hello(peer: number, bytes = BYTES, token = TOKEN): Buffer {
  const h = Buffer.alloc(48);
  h.write(token, 0, "latin1");
  h.writeInt32LE(peer, 32);
  h.writeBigInt64LE(BigInt(bytes), 40);
  return h;
}

describe("model plane frames over TCP", () => {
  it("write the ranges, then the stores, then ring the doorbell in the peer's copy", async () => {
    const p = pair();
    try {
      const src = new Float32Array(p.bufA, 4096, 100);
      for (let i = 0; i < 100; i++) src[i] = i * 0.5;
      new Int32Array(p.bufA, 8192, 4).set([7, 8, 9, 10]);
      const f = new PlaneFrame().view(src, 100).region(8192, 12).store(64, 41).ring(128);
      const bell = new Int32Array(p.bufB, 128, 2);
      p.a.send(1, f);
      await until("the doorbell", () => Atomics.load(bell, 0) === 1);
      assert.deepEqual([...new Float32Array(p.bufB, 4096, 100)], [...src]);
      assert.deepEqual([...new Int32Array(p.bufB, 8192, 4)], [7, 8, 9, 0], "12 bytes, not 16");
      assert.equal(new Int32Array(p.bufB, 64, 1)[0], 41);
      const info = p.b.info();
      assert.equal(info.framesIn, 1);
      assert.equal(info.bytesIn, 412);
      assert.deepEqual(info.linked, [0]);
      assert.equal(p.a.info().framesOut, 1);
    } finally {
      p.close();
    }
  });

  it("a frame behind its guard (a step given up since) is dropped; one at or past it applies", async () => {
    const p = pair();
    try {
      const seq = new Int32Array(p.bufB, 256, 1);
      seq[0] = 5;
      const target = new Int32Array(p.bufB, 512, 1);
      const bell = new Int32Array(p.bufB, 128, 1);
      p.a.send(1, new PlaneFrame().store(512, 1).guard(256, 4).ring(128));
      p.a.send(1, new PlaneFrame().store(600, 1).ring(128));
      await until("the unguarded frame", () => Atomics.load(bell, 0) === 1);
      assert.equal(target[0], 0, "the stale frame changed nothing");
      assert.equal(p.b.info().stale, 1);
      p.a.send(1, new PlaneFrame().store(512, 2).guard(256, 5).ring(128));
      p.a.send(1, new PlaneFrame().store(512, 3).store(256, 6).guard(256, 6).ring(128));
      await until("both frames", () => Atomics.load(bell, 0) === 3);
      assert.equal(target[0], 3);
      assert.equal(seq[0], 6);
    } finally {
      p.close();
    }
  });

  it("two replicas that each link to the other both send and receive (one connection per direction)", async () => {
    const bufs = [new ArrayBuffer(BYTES), new ArrayBuffer(BYTES)];
    const [r0, r1] = bufs.map((b, i) => PlaneNet.open(b, TOKEN, 1 + i, 2000)) as [PlaneNet, PlaneNet];
    try {
      const ports = [r0.listen("127.0.0.1"), r1.listen("127.0.0.1")];
      r0.connect(2, "127.0.0.1", ports[1]!);
      r1.connect(1, "127.0.0.1", ports[0]!);
      // Let each side take the other's connection before anything is sent.
      await until("both links", () => r0.info().linked.includes(2) && r1.info().linked.includes(1));
      for (let round = 1; round <= 3; round++) {
        r0.send(2, new PlaneFrame().store(64, round).ring(128));
        r1.send(1, new PlaneFrame().store(64, 10 * round).ring(128));
        await until(
          `round ${round}`,
          () =>
            new Int32Array(bufs[1]!, 64, 1)[0] === round && new Int32Array(bufs[0]!, 64, 1)[0] === 10 * round,
        );
      }
      assert.equal(r0.info().error, "");
      assert.equal(r1.info().error, "");
    } finally {
      r0.close();
      r1.close();
    }
  });

  it("refuses a wrong token, a segment of another size and its own peer id, by name", () => {
    const b = PlaneNet.open(new ArrayBuffer(BYTES), TOKEN, 1, 2000);
    try {
      const port = b.listen("127.0.0.1");
      const wrong = PlaneNet.open(new ArrayBuffer(BYTES), "f".repeat(32), 0, 2000);
      assert.throws(() => wrong.connect(1, "127.0.0.1", port), /refused: wrong token/);
      wrong.close();
      const other = PlaneNet.open(new ArrayBuffer(BYTES / 2), TOKEN, 0, 2000);
      assert.throws(() => other.connect(1, "127.0.0.1", port), /another size/);
      other.close();
      const same = PlaneNet.open(new ArrayBuffer(BYTES), TOKEN, 1, 2000);
      assert.throws(() => same.connect(1, "127.0.0.1", port), /peer id out of range/);
      same.close();
      assert.throws(() => PlaneNet.open(new ArrayBuffer(BYTES), "short", 0, 2000), /32 bytes/);
      assert.deepEqual(b.info().linked, []);
    } finally {
      b.close();
    }
  });

  it("a malformed frame closes that link only, with the reason; the other links go on", async () => {
    const p = pair();
    try {
      for (const [what, frame, why] of [
        ["bad magic", Buffer.alloc(32, 1), /bad magic/],
        ["a region outside the segment", head(1, 0, 8, [BYTES - 4, 8]), /region 0 outside the segment/],
        ["too many stores", head(0, 65, 0), /store count out of range/],
        ["a doorbell outside", head(0, 0, 0, [], BYTES - 4), /doorbell outside the segment/],
      ] as const) {
        const sock = connect(p.port, "127.0.0.1");
        await once(sock, "connect");
        sock.write(hello(5));
        const [answer] = (await once(sock, "data")) as [Buffer];
        assert.equal(answer[0], 1, "accepted");
        await until("the link", () => p.b.info().linked.includes(5));
        sock.write(frame);
        await until(`the refusal of ${what}`, () => !p.b.info().linked.includes(5));
        assert.match(p.b.info().error, why);
        sock.destroy();
      }
      assert.equal(p.b.info().malformed, 4);
      // The front end's link was never touched.
      p.a.send(1, new PlaneFrame().store(64, 9).ring(128));
      await until("a frame on the good link", () => new Int32Array(p.bufB, 64, 1)[0] === 9);
    } finally {
      p.close();
    }
  });

  it("a link that closes stores its loss word (a replica's lease when its front end goes)", async () => {
    const p = pair();
    const lease = new Int32Array(p.bufB, 1024, 1);
    lease[0] = 3;
    p.b.onLoss(0, 1024, 0, 128);
    p.a.close();
    await until("the loss store", () => Atomics.load(lease, 0) === 0);
    assert.equal(new Int32Array(p.bufB, 128, 1)[0], 1, "and its doorbell rang");
    p.b.close();
  });

  it("the sending side refuses what the receiver would (and a peer it has no link to)", () => {
    const p = pair();
    try {
      assert.throws(() => p.a.send(1, new PlaneFrame().region(BYTES - 4, 8)), /outside the segment/);
      assert.throws(() => p.a.send(1, new PlaneFrame().store(3, 1)), /outside the segment/);
      assert.throws(() => p.a.send(2, new PlaneFrame().store(0, 1)), /no link to peer 2/);
    } finally {
      p.close();
    }
  });
});

/** A frame header and tables: nRegions, nStores, payload, regions [off, len]…, ringOff. */
function head(
  nRegions: number,
  nStores: number,
  payload: number,
  regions: number[] = [],
  ringOff = -1,
): Buffer {
  const h = Buffer.alloc(32 + (8 * regions.length) / 2);
  h.writeInt32LE(0x4e504c4d, 0);
  h.writeInt32LE(1, 4);
  h.writeInt32LE(nRegions, 8);
  h.writeInt32LE(nStores, 12);
  h.writeInt32LE(-1, 16);
  h.writeInt32LE(0, 20);
  h.writeInt32LE(ringOff, 24);
  h.writeInt32LE(payload, 28);
  for (const [i, v] of regions.entries()) h.writeInt32LE(v, 32 + 4 * i);
  return h;
}
