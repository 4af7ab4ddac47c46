// Whole-number command-line flags for the benchmarks (parsed with node:util's parseArgs): the
// CLI's own validation, with the flag's name in the error instead of a NaN size later.
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
