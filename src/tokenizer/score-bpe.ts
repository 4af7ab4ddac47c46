/**
 * SentencePiece-style BPE as llama2.c runs it: start from one symbol per character, then keep
 * merging the adjacent pair whose concatenation is the best-scored vocabulary piece (leftmost on
 * ties) until no pair merges. A heap of candidate pairs makes it O(n log n) instead of llama2.c's
 * rescan per merge, with the same result.
 */
export interface ScoredVocab {
  /** Id of a piece that text may merge into (control and byte tokens excluded), or undefined. */
  lookup(piece: string): number | undefined;
  score(id: number): number;
}

/** Candidate merge of symbol `left` with its right neighbour, valid while both still hold these texts. */
interface Candidate {
  score: number;
  left: number;
  right: number;
  id: number;
  leftText: string;
  rightText: string;
}

/** Splits `text` into pieces; a piece's id is undefined when it is not in the vocabulary (byte fallback). */
export function bpeMerge(text: string, vocab: ScoredVocab): { text: string; id: number | undefined }[] {
  const sym: string[] = Array.from(text); // code points
  const n = sym.length;
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  const heap: Candidate[] = [];
  const consider = (left: number): void => {
    const right = next[left]!;
    if (left < 0 || right < 0) return;
    const merged = sym[left]! + sym[right]!;
    const id = vocab.lookup(merged);
    if (id === undefined) return;
    heapPush(heap, { score: vocab.score(id), left, right, id, leftText: sym[left]!, rightText: sym[right]! });
  };
  for (let i = 0; i + 1 < n; i++) consider(i);
  while (heap.length > 0) {
    const c = heapPop(heap);
    // Stale if either side has merged with something else since this candidate was made.
    if (next[c.left] !== c.right || sym[c.left] !== c.leftText || sym[c.right] !== c.rightText) continue;
    sym[c.left] = c.leftText + c.rightText;
    sym[c.right] = "";
    const after = next[c.right]!;
    next[c.left] = after;
    if (after >= 0) prev[after] = c.left;
    if (prev[c.left]! >= 0) consider(prev[c.left]!);
    consider(c.left);
  }
  const out: { text: string; id: number | undefined }[] = [];
  for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]!) out.push({ text: sym[i]!, id: vocab.lookup(sym[i]!) });
  return out;
}

/** Higher score first; on equal scores the leftmost pair, as llama2.c's left-to-right scan picks it. */
function before(a: Candidate, b: Candidate): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}

function heapPush(h: Candidate[], c: Candidate): void {
  h.push(c);
  let i = h.length - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!before(h[i]!, h[p]!)) break;
    [h[i], h[p]] = [h[p]!, h[i]!];
    i = p;
  }
}

function heapPop(h: Candidate[]): Candidate {
  const top = h[0]!;
  const last = h.pop()!;
  if (h.length > 0) {
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
  return top;
}
