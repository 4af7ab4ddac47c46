import { readFileSync } from "node:fs";
import { cpus } from "node:os";

/** The CPU's model name, printed and recorded beside every kernel figure. */
export function cpuModel(): string {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"));
    if (line) return line.split(":")[1]!.trim();
  } catch {}
  return cpus()[0]?.model ?? "unknown CPU";
}
