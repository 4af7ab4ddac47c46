import { createHash } from "node:crypto";
import type { Sequence } from "./sequence.js";

/** Tokens of one block, as the hash reads them (reused: keys are made once a block, off the layers). */
let scratch = new Int32Array(0);

/**
 * The prefix-cache keys of a sequence's first `count` full blocks, extending `seq.blockKeys`.
 * Block i's key is SHA-256 of block i − 1's key and block i's tokens: it names every token from
 * the sequence's start to the block's end, so equal keys mean equal KV. A cryptographic hash,
 * because a collision would hand one request another's cached prefix.
 */
export function blockKeys(seq: Sequence, blockSize: number, count: number): readonly string[] {
  const keys = seq.blockKeys;
  if (scratch.length < blockSize) scratch = new Int32Array(blockSize);
  for (let b = keys.length; b < count; b++) {
    for (let i = 0; i < blockSize; i++) scratch[i] = seq.tokenAt(b * blockSize + i);
    const h = createHash("sha256");
    if (b > 0) h.update(keys[b - 1]!);
    h.update(new Uint8Array(scratch.buffer, 0, blockSize * 4));
    keys.push(h.digest("base64"));
  }
  return keys;
}
