import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { FrameEncoder } from "../../src/transport/codec.js";
import { MSG_AUTH, MSG_AUTH_OK, MSG_HELLO, proof } from "../../src/transport/handshake.js";
import { DEFAULT_LIMITS } from "../../src/transport/limits.js";
import { FIXED_HEADER_BYTES, type Message, PROTOCOL_VERSION } from "../../src/transport/message.js";
import { SeededRandom } from "../../src/util/seeded-random.js";

/** One whole frame as bytes (transport-reserved types allowed: a fuzzer speaks them too). */
export function encodeFrame(msg: Message): Buffer {
  const enc = new FrameEncoder(DEFAULT_LIMITS);
  enc.prepare(msg, true);
  const buf = Buffer.alloc(enc.frameBytes);
  enc.writeMeta(buf, new DataView(buf.buffer, buf.byteOffset, buf.length), 0);
  enc.writeTensorData(buf, enc.metaBytes);
  enc.release();
  return buf;
}

/** A seeded PRNG (mulberry32): the fuzz cases are the same on every run. */
export function prng(seed: number): () => number {
  const r = new SeededRandom(seed);
  return () => r.next();
}

export function randomBuffer(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Resolves true when the peer closes the socket within `ms`, false otherwise. */
export function closedWithin(socket: Socket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** A plain socket to host:port (errors are swallowed: a reset is one way of being closed). */
export function rawSocket(host: string, port: number, discard = true): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    s.once("connect", () => {
      s.on("error", () => {});
      // Discard what the server sends: a paused socket would never see the server's close.
      if (discard) s.resume();
      resolve(s);
    });
    s.once("error", reject);
  });
}

/** Reads whole frames from a socket: resolves with the next frame's type and control JSON. */
function nextFrame(socket: Socket, state: { buf: Buffer }): Promise<{ type: number; control: unknown }> {
  return new Promise((resolve, reject) => {
    const tryParse = (): boolean => {
      const b = state.buf;
      if (b.length < FIXED_HEADER_BYTES) return false;
      const total = FIXED_HEADER_BYTES + b.readUInt32LE(12);
      if (b.length < total) return false;
      const nInts = b.readUInt16LE(16);
      const ctrl = b.readUInt32LE(20);
      const at = FIXED_HEADER_BYTES + 4 * nInts;
      const control = ctrl > 0 ? JSON.parse(b.subarray(at, at + ctrl).toString("utf8")) : undefined;
      state.buf = b.subarray(total);
      socket.off("data", onData);
      socket.off("close", onClose);
      resolve({ type: b[5]!, control });
      return true;
    };
    const onData = (d: Buffer) => {
      state.buf = Buffer.concat([state.buf, d]);
      tryParse();
    };
    const onClose = () => reject(new Error("closed during the handshake"));
    if (tryParse()) return;
    socket.on("data", onData);
    socket.once("close", onClose);
  });
}

/**
 * Runs the client side of the handshake by hand (HELLO → AUTH → AUTH_OK) and returns the raw,
 * authenticated socket, so a test can then write arbitrary bytes as a peer that knows the secret.
 */
export async function rawAuthenticated(host: string, port: number, secret: string): Promise<Socket> {
  const socket = await rawSocket(host, port, false);
  const state = { buf: Buffer.alloc(0) };
  const hello = await nextFrame(socket, state);
  if (hello.type !== MSG_HELLO) throw new Error(`expected HELLO, got type ${hello.type}`);
  const serverNonce = (hello.control as { nonce: string }).nonce;
  const nonce = randomBytes(32).toString("hex");
  const mac = proof(new TextEncoder().encode(secret), "client", serverNonce, nonce);
  socket.write(encodeFrame({ type: MSG_AUTH, control: { protocol: PROTOCOL_VERSION, nonce, mac } }));
  const ok = await nextFrame(socket, state);
  if (ok.type !== MSG_AUTH_OK) throw new Error(`expected AUTH_OK, got type ${ok.type}`);
  // Drain anything further (pings, replies) so the server never blocks on us.
  socket.on("data", () => {});
  return socket;
}
