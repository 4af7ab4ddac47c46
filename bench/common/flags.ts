// Command-line flags for the benchmarks: whole numbers checked by the CLI's own validation (with the
// flag's name in the error instead of a NaN size later), and parseArgs with --help and usage errors.
import path from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { intArg } from "../../src/cli/parse.js";

/** `value` of --`flag` as an integer of at least `min`. */
export function intFlag(value: string, flag: string, min = 1): number {
  try {
    return intArg(min)(value);
  } catch (err) {
    throw new Error(`--${flag}: ${(err as Error).message}`);
  }
}

/** A comma-separated list of --`flag` values, each an integer of at least `min`. */
export function intListFlag(value: string, flag: string, min = 1): number[] {
  return value.split(",").map((s) => intFlag(s, flag, min));
}

/**
 * node:util's parseArgs for a bench's command line, with what a user of a command expects:
 * `--help` (or `-h`) lists the bench's flags with their defaults and exits, and an unknown or
 * malformed flag prints one line naming it and the same list, then exits with status 2, instead of
 * parseArgs' stack trace.
 */
/**
 * --read-ahead: "default" (null: what this CPU gets), "on" or "off", or a comma-separated list of
 * them to compare in the same repetitions (the addon's setReadAhead).
 */
export function readAheadFlag(value: string): (boolean | null)[] {
  return value.split(",").map((m) => {
    if (m === "default") return null;
    if (m === "on" || m === "off") return m === "on";
    throw new Error(`--read-ahead takes default, on or off (or a list of them), got "${m}"`);
  });
}

export function benchArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  const argv = config.args ?? process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(benchUsage(config));
    process.exit(0);
  }
  try {
    return parseArgs(config);
  } catch (err) {
    const code = (err as { code?: string }).code ?? "";
    if (!code.startsWith("ERR_PARSE_ARGS")) throw err;
    process.stderr.write(`${benchName()}: ${(err as Error).message}\n\n${benchUsage(config)}`);
    process.exit(2);
  }
}

/** The flags of `config`, one a line, with their defaults. */
export function benchUsage(config: ParseArgsConfig): string {
  const lines = Object.entries(config.options ?? {}).map(([name, o]) => {
    const value = o.type === "string" ? ` <${o.multiple ? "value..." : "value"}>` : "";
    const def =
      o.default === undefined
        ? ""
        : `  (default: ${Array.isArray(o.default) ? o.default.join(",") : String(o.default)})`;
    return `  --${name}${value}${def}`;
  });
  return `usage: node ${benchName()} [flags]\n${lines.join("\n")}\n`;
}

function benchName(): string {
  return path.relative(process.cwd(), process.argv[1] ?? "bench") || "bench";
}
