/**
 * A small seeded PRNG (xoshiro128**, seeded through splitmix32) per sequence, so a seeded request
 * yields the same tokens however it is batched.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  /** Uniform in [0, 1) with 32 bits of randomness. */
  next(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result / 4294967296;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * The seed of choice `choice` (0-based) of a seeded request with n choices, so that every choice
 * draws its own stream and the request as a whole stays reproducible.
 *
 * Choice 0 keeps the request's seed, so an n = 1 request and choice 0 of an n > 1 request (and
 * `lamina generate --seed`) sample the same tokens. Every other choice hashes (seed, choice) with
 * MurmurHash3 (x86, 32-bit) over the 12 bytes (seed's low word, seed's high word, choice): the
 * seeds of different (seed, choice) pairs are unrelated, so choice k of seed s does not repeat
 * choice 0 of seed s + k (as a plain `seed + k` did), and requests with nearby seeds share no
 * samples beyond the chance 2^-32 collisions of any 32-bit seed.
 */
export function choiceSeed(seed: number, choice: number): number {
  if (choice === 0) return seed;
  // ToUint32 reduces modulo 2^32, exact for every safe integer (negative ones too).
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  let h = MURMUR_SEED;
  h = murmurRound(h, lo);
  h = murmurRound(h, hi);
  h = murmurRound(h, choice >>> 0);
  h ^= 12; // key length in bytes
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Any fixed value; it only sets this use of the hash apart from others. */
const MURMUR_SEED = 0x6c616d69; // "lami"

/** One 4-byte block of MurmurHash3_x86_32. */
function murmurRound(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = rotl(k, 15);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = rotl(h, 13);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}
