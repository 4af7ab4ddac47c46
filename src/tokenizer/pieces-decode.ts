import type { TokenPieces } from "./types.js";
import { utf8Decoder } from "./utf8.js";

/**
 * The reference meaning of TokenPieces: concatenate the bytes of the kept tokens, decode them as
 * UTF-8, and drop one leading space for SentencePiece-style vocabularies.
 */
export function decodeWithPieces(
  pieces: TokenPieces,
  ids: readonly number[],
  skipSpecialTokens: boolean,
): string {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const id of ids) {
    if (skipSpecialTokens && pieces.isSpecial(id)) continue;
    const b = pieces.bytes(id);
    parts.push(b);
    total += b.length;
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const b of parts) {
    all.set(b, at);
    at += b.length;
  }
  const text = utf8Decoder.decode(all);
  return pieces.stripsLeadingSpace && text.startsWith(" ") ? text.slice(1) : text;
}
