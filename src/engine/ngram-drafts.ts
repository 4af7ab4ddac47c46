/**
 * Draft tokens for speculative decoding by prompt lookup (n-gram matching): a sequence's last n
 * tokens are looked for earlier in its own prompt and output, and the tokens that followed their
 * latest occurrence are proposed as what comes next. No draft model: the proposals cost a scan of
 * the sequence's tokens, and they are right where replies copy from their context (quotes, code
 * being edited, names and phrases a story repeats, a loop the model has fallen into).
 *
 * The target model checks every proposal in one forward pass (engine/speculative.ts); a wrong one
 * costs the rows it was verified in, never a wrong token.
 */

/** The tokens a draft is looked up in: a sequence's prompt then output. */
export interface TokenHistory {
  readonly length: number;
  tokenAt(i: number): number;
}

/** Longest suffix looked for (longer matches predict better; shorter ones match more often). */
export const MAX_NGRAM = 3;
/** Shortest suffix looked for: one repeated token alone proposes too often to pay. */
export const MIN_NGRAM = 2;

/**
 * Writes up to `limit` proposed tokens into `out` (cleared first) and returns how many: the
 * continuation of the latest earlier occurrence of the history's last n tokens, for the longest n
 * in [MIN_NGRAM, MAX_NGRAM] that occurs. Allocates nothing (`out` keeps its capacity).
 */
export function proposeDrafts(h: TokenHistory, limit: number, out: number[]): number {
  out.length = 0;
  const len = h.length;
  if (limit <= 0) return 0;
  for (let n = Math.min(MAX_NGRAM, len - 1); n >= MIN_NGRAM; n--) {
    const at = latestOccurrence(h, len, n);
    if (at < 0) continue;
    const from = at + n;
    const end = Math.min(from + limit, len);
    for (let i = from; i < end; i++) out.push(h.tokenAt(i));
    return out.length;
  }
  return 0;
}

/**
 * Where the last `n` tokens occur before, latest first, with at least one token after the match;
 * -1 if nowhere. Checks the last token first: most positions fail on it.
 */
function latestOccurrence(h: TokenHistory, len: number, n: number): number {
  const last = h.tokenAt(len - 1);
  for (let end = len - 2; end >= n - 1; end--) {
    if (h.tokenAt(end) !== last) continue;
    let k = 1;
    while (k < n && h.tokenAt(end - k) === h.tokenAt(len - 1 - k)) k++;
    if (k === n) return end - n + 1;
  }
  return -1;
}
