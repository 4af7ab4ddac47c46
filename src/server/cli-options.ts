import { InvalidArgumentError } from "commander";

/** Commander argument parsers that reject bad values with a message naming the flag. */

export function positiveInt(flag: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim()))
      throw new InvalidArgumentError(`${flag} must be a positive integer, got '${value}'`);
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 1)
      throw new InvalidArgumentError(`${flag} must be a positive integer, got '${value}'`);
    return n;
  };
}

export function nonNegativeInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) {
      throw new InvalidArgumentError(`${flag} must be a non-negative integer, got '${value}'`);
    }
    return n;
  };
}

export function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > 65535)
    throw new InvalidArgumentError(`--port must be 0..65535, got '${value}'`);
  return n;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3,
  t: 1e12,
  tb: 1e12,
  tib: 1024 ** 4,
};

/** "512MiB", "2G", "1.5GB", "1048576" → bytes. */
export function byteSize(flag: string) {
  return (value: string): number => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
    const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
    if (!m || unit === undefined) {
      throw new InvalidArgumentError(`${flag} must be a size such as 512MiB, 2GiB or 1G, got '${value}'`);
    }
    const bytes = Math.floor(Number(m[1]) * unit);
    if (bytes < 1) throw new InvalidArgumentError(`${flag} must be positive, got '${value}'`);
    return bytes;
  };
}

/** "host:port,host:port" with every part checked. */
export function hostPortList(flag: string) {
  return (value: string): string[] => {
    const list = value
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    if (list.length === 0) throw new InvalidArgumentError(`${flag} needs at least one host:port`);
    for (const addr of list) {
      const i = addr.lastIndexOf(":");
      const p = Number(addr.slice(i + 1));
      if (i <= 0 || !/^\d+$/.test(addr.slice(i + 1)) || p < 1 || p > 65535) {
        throw new InvalidArgumentError(`${flag}: '${addr}' is not host:port`);
      }
    }
    return list;
  };
}
