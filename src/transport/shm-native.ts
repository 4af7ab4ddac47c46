/**
 * Loads the lamina_shm addon (native/shm): POSIX shared memory and futex wait/wake, which Node
 * itself does not offer between processes. Loaded lazily so TCP-only users never need it.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

export interface ShmNative {
  create(name: string, bytes: number): ArrayBuffer;
  open(name: string): ArrayBuffer;
  unlink(name: string): boolean;
  /** 0 woken, 1 the word did not hold `expected`, 2 timed out. */
  wait(buffer: ArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): number;
  waitAsync(buffer: ArrayBuffer, byteOffset: number, expected: number, timeoutMs: number): Promise<number>;
  wake(buffer: ArrayBuffer, byteOffset: number, count: number): number;
  pidAlive(pid: number): boolean;
  /**
   * The native limits the transports are benchmarked against (native/shm/src/limits.cc): a spin-only
   * ping-pong of `bytes` through a shared mapping between two processes, and a blocking-socket one
   * over loopback TCP. The lead sides return each round trip in nanoseconds.
   */
  pingPongLead(
    buffer: ArrayBuffer,
    byteOffset: number,
    bytes: number,
    iterations: number,
    timeoutMs?: number,
  ): Float64Array;
  pingPongEcho(
    buffer: ArrayBuffer,
    byteOffset: number,
    bytes: number,
    iterations: number,
    timeoutMs?: number,
  ): number;
  tcpListen(): { fd: number; port: number };
  tcpEcho(fd: number, bytes: number, iterations: number): number;
  tcpPingPong(port: number, bytes: number, iterations: number): Float64Array;
}

export const WAIT_WOKEN = 0;
export const WAIT_NOT_EQUAL = 1;
export const WAIT_TIMED_OUT = 2;

let cached: ShmNative | null = null;

/** The addon, or a clear error naming the file and how to build it. */
export function shmNative(): ShmNative {
  if (cached) return cached;
  const here = path.dirname(fileURLToPath(import.meta.url));
  // dist/src/transport → repository root; LAMINA_SHM_ADDON overrides for unusual layouts.
  const file =
    process.env.LAMINA_SHM_ADDON ?? path.resolve(here, "../../../native/shm/build/Release/lamina_shm.node");
  if (!existsSync(file))
    throw new Error(
      `the shared-memory transport needs the native addon ${file}; build it with \`node scripts/build-native.mjs\``,
    );
  cached = createRequire(import.meta.url)(file) as ShmNative;
  return cached;
}
