import { readFileSync } from "node:fs";
import { hostname } from "node:os";

let cached: string | null = null;

/**
 * Which machine (boot) this process runs on: two processes with the same id see the same pids, so
 * one may check the other's liveness by its pid. Linux's boot id; elsewhere the host name.
 */
export function hostId(): string {
  if (cached !== null) return cached;
  try {
    cached = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    cached = `host:${hostname()}`;
  }
  return cached;
}
