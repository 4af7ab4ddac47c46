/**
 * The limits transport figures are stated against, measured in the same run as the figure:
 * memcpy bandwidth for a size, and a native round trip of the same bytes between two processes
 * (shared memory: a spin-only ping-pong through one mapping, a cache-line ping-pong at 0 bytes;
 * TCP: a plain blocking-socket ping-pong with TCP_NODELAY), by native/shm/src/limits.cc.
 */
import { fork } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { shmNative } from "../../src/transport/shm-native.js";
import { pinProcess } from "../disagg/worker-proc.js";

const here = path.dirname(fileURLToPath(import.meta.url));

export /** memcpy GB/s for `bytes`-sized copies (TypedArray.set), best of a few timed batches. */
function memcpyGBs(bytes: number): number {
  const src = new Uint8Array(bytes).fill(7);
  const dst = new Uint8Array(bytes);
  const reps = Math.max(1, Math.floor((64 << 20) / bytes));
  let best = 0;
  for (let k = 0; k < 5; k++) {
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < reps; r++) dst.set(src);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.max(best, (bytes * reps) / s / 1e9);
  }
  return best;
}

const NATIVE_ITERATIONS = 2000;

export function percentiles(ns: Float64Array): { median: number; p99: number } {
  const sorted = Array.from(ns.subarray(Math.min(100, ns.length >> 2))).sort((a, b) => a - b);
  return {
    median: sorted[sorted.length >> 1]! / 1000,
    p99: sorted[Math.floor(sorted.length * 0.99)]! / 1000,
  };
}

/** The native limit for one size: a spin-only ping-pong through shared memory, or TCP's. */
export async function nativeRoundTrip(
  kind: "shm" | "tcp",
  bytes: number,
  /** Pin the peer process to this core (when the caller pinned itself to another). */
  peerCore: number | null = null,
): Promise<{ median: number; p99: number }> {
  const native = shmNative();
  const peer = path.join(here, "native-echo-peer.js");
  if (kind === "shm") {
    const name = `/lamina-bench-limit-${process.pid}`;
    const buffer = native.create(name, Math.max(4096, 128 + 2 * bytes));
    try {
      const child = fork(peer, ["shm", name, String(bytes), String(NATIVE_ITERATIONS)], { stdio: "inherit" });
      if (peerCore !== null && child.pid) pinProcess(child.pid, peerCore);
      await once(child, "message");
      const ns = native.pingPongLead(buffer, 0, bytes, NATIVE_ITERATIONS);
      await once(child, "exit");
      return percentiles(ns);
    } finally {
      native.unlink(name);
    }
  }
  const child = fork(peer, ["tcp", String(bytes), String(NATIVE_ITERATIONS)], { stdio: "inherit" });
  if (peerCore !== null && child.pid) pinProcess(child.pid, peerCore);
  const [{ port }] = (await once(child, "message")) as [{ port: number }];
  const ns = native.tcpPingPong(port, bytes, NATIVE_ITERATIONS);
  await once(child, "exit");
  return percentiles(ns);
}
