/**
 * Cheap argument checks shared by the kernel backends: a wrong length or count becomes a
 * TypeError naming the method and argument instead of a read past the end of a buffer.
 */
export function checkCount(method: string, name: string, n: number): void {
  if (!Number.isInteger(n) || n < 0)
    throw new TypeError(`${method}: ${name} must be a non-negative integer, got ${n}`);
}

export function checkLength(
  method: string,
  name: string,
  a: ArrayLike<number> | undefined,
  need: number,
): void {
  if (a === undefined || a.length < need)
    throw new TypeError(`${method}: ${name} has ${a?.length ?? 0} elements, needs at least ${need}`);
}
