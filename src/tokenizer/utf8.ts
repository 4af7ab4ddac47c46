/** Shared UTF-8 codecs: invalid bytes decode to U+FFFD (maximal-subpart rule, as Rust's from_utf8_lossy). */
export const utf8Encoder = new TextEncoder();
export const utf8Decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/**
 * Length of the longest prefix of bytes[0, end) that ends on a character boundary: a trailing lead
 * byte whose continuation bytes have not all arrived yet is held back. Invalid bytes are not held
 * (they decode to U+FFFD either way).
 */
export function completePrefixLength(bytes: Uint8Array, end: number): number {
  // A UTF-8 sequence is at most 4 bytes, so only the last 3 can start an unfinished one.
  for (let i = end - 1; i >= 0 && i >= end - 3; i--) {
    const b = bytes[i]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: keep looking for its lead
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return end - i < need ? i : end;
  }
  return end;
}
