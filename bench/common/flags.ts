// Whole-number command-line flags for the benchmarks: a clear error instead of NaN sizes.

/** `value` of --`flag` as an integer of at least `min`. */
export function intFlag(value: string, flag: string, min = 1): number {
  const v = Number(value);
  if (!Number.isInteger(v) || v < min)
    throw new Error(`--${flag} takes whole numbers >= ${min}; got "${value}"`);
  return v;
}

/** A comma-separated list of --`flag` values, each an integer of at least `min`. */
export function intListFlag(value: string, flag: string, min = 1): number[] {
  return value.split(",").map((s) => intFlag(s, flag, min));
}
