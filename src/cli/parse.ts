import { InvalidArgumentError } from "commander";
import { parseCpuList } from "../kernels/cpus.js";
import { parseHostPort } from "../util/host-port.js";

/**
 * Commander argument parsers. A bad value is refused with the form expected
 * (`expected an integer ≥ 1, got "1.5"`); wrapped in named(), the message also names the flag.
 */
export class InvalidValueError extends InvalidArgumentError {
  constructor(
    readonly form: string,
    readonly value: string,
  ) {
    super(`expected ${form}, got "${value}"`);
  }
}

/** The parser, its errors naming the flag: `--tp must be an integer ≥ 1 (got "1.5")`. */
export function named<T, P = T>(flag: string, parse: (value: string, previous: P) => T) {
  return (value: string, previous?: P): T => {
    try {
      return parse(value, previous as P);
    } catch (e) {
      if (e instanceof InvalidValueError)
        throw new InvalidArgumentError(`${flag} must be ${e.form} (got "${e.value}")`);
      throw e;
    }
  };
}

/** A CPU list as Linux writes one ("1", "0-3,6"): ascending, without repeats. */
export function cpuListArg(value: string): number[] {
  try {
    return parseCpuList(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** An integer in [min, max]; without a max, any integer from min up. */
export function intArg(min: number, max = Number.MAX_SAFE_INTEGER) {
  const form = max >= Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer in [${min}, ${max}]`;
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidValueError(form, value);
    return n;
  };
}

function finiteArg(accept: (n: number) => boolean, form: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || !accept(n)) throw new InvalidValueError(form, value);
    return n;
  };
}

/** A number in [min, max]. */
export function floatArg(min: number, max: number) {
  return finiteArg((n) => n >= min && n <= max, `a number in [${min}, ${max}]`);
}

/** A number above `min` (exclusive) and at most `max`: SLOs, time limits, shares of a whole. */
export function floatAboveArg(min: number, max = Number.POSITIVE_INFINITY) {
  const form = `a number > ${min}${max < Number.POSITIVE_INFINITY ? ` and ≤ ${max}` : ""}`;
  return finiteArg((n) => n > min && n <= max, form);
}

/** A positive number (rates, speed-ups, distribution shapes). */
export const positiveFloatArg = finiteArg((n) => n > 0, "a positive number");

/** A share in [0, 1). */
export const ratioArg = finiteArg((n) => n >= 0 && n < 1, "a ratio in [0, 1)");

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/** Byte sizes such as 512MiB, 2G, 1048576. */
export function sizeArg(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new InvalidArgumentError(`expected a size such as 512MiB or 2G, got "${value}"`);
  const n = Math.floor(Number(m[1]) * unit);
  if (n <= 0) throw new InvalidArgumentError(`size must be positive, got "${value}"`);
  return n;
}

/** host:port[,host:port...] */
export function addrListArg(value: string): string[] {
  const list = listArg(value);
  if (list.length === 0) throw new InvalidArgumentError("expected host:port[,host:port...]");
  for (const a of list) {
    const hp = parseHostPort(a);
    if (!hp || hp.port < 1) throw new InvalidArgumentError(`"${a}" is not host:port`);
  }
  return list;
}

export function choiceArg<T extends string>(choices: readonly T[]) {
  const form = `one of ${choices.join(", ")}`;
  return (value: string): T => {
    if (!(choices as readonly string[]).includes(value)) throw new InvalidValueError(form, value);
    return value as T;
  };
}

/** A comma-separated list ("a, b,c" → a, b, c; empty items dropped). */
export function listArg(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A comma-separated list whose items each go through `parse`. */
export function listOf<T>(parse: (item: string) => T) {
  return (value: string): T[] => listArg(value).map(parse);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** HOST:PORT to listen on (IPv6 hosts in brackets; port 0 picks a free one). */
export function listenArg(value: string): { host: string; port: number } {
  const hp = parseHostPort(value);
  if (!hp) throw new InvalidArgumentError(`expected HOST:PORT, got "${value}"`);
  return hp;
}
