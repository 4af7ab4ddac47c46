import type { TokenPieces } from "../tokenizer/types.js";

/**
 * JSON mode (OpenAI's response_format json_object): a reply that is one JSON object. A byte-level
 * pushdown automaton says whether a token's bytes can continue the reply so far; the sampler
 * draws only tokens it accepts, and end-of-sequence only once the object is closed. Strings pass
 * any byte but controls, quotes and backslashes unescaped (UTF-8 is bytes like any other), so
 * the automaton needs no character decoding. Runs of whitespace are bounded, so a model cannot
 * stall in them, and the reply ends as soon as the object closes.
 */

/** What the automaton expects next. */
enum Mode {
  /** The top level: whitespace, then `{`. */
  Start,
  /** A value (after `:` or `,` in an array, or at an array's start when `]` is also allowed). */
  Value,
  /** After `{`: a key or `}`. */
  ObjectStart,
  /** After `,` in an object: a key. */
  Key,
  /** After a key: `:`. */
  Colon,
  /** After a value inside a container: `,` or its closing bracket. */
  AfterValue,
  /** Inside a string. */
  Str,
  /** After a backslash in a string. */
  Escape,
  /** In \uXXXX (aux: hex digits left). */
  Unicode,
  /** A number (aux: its part, see NUM_*). */
  Num,
  /** true / false / null (aux: the literal's index, count: its bytes read). */
  Literal,
  /** The object is closed: only end-of-sequence. */
  Done,
}

// Number parts: what has been read.
const NUM_MINUS = 0; // "-"
const NUM_ZERO = 1; // a leading 0
const NUM_INT = 2; // integer digits
const NUM_DOT = 3; // "."
const NUM_FRAC = 4; // fraction digits
const NUM_E = 5; // "e"
const NUM_E_SIGN = 6; // "e+" / "e-"
const NUM_EXP = 7; // exponent digits

const LITERALS = ["true", "false", "null"].map((s) => Array.from(s, (c) => c.charCodeAt(0)));

/**
 * Whitespace allowed in one run inside the object (a newline and the indentation of pretty-printed
 * JSON), before it (a space or newline the first token may carry) and after it (none: the reply
 * ends). A model that would rather not write JSON otherwise fills its reply with whitespace, the
 * likeliest bytes the automaton allows.
 */
const MAX_WHITESPACE_RUN = 24;
const MAX_LEADING_WHITESPACE = 2;

/** The automaton's state: small and immutable, so checking a token copies nothing but its fields. */
export interface JsonState {
  readonly mode: Mode;
  /** Open containers, innermost last: "o" object, "a" array. */
  readonly stack: string;
  /** A string being read is a key (then `:` follows). */
  readonly key: boolean;
  readonly aux: number;
  readonly count: number;
  /** Whitespace bytes in the current run. */
  readonly ws: number;
}

export const JSON_START: JsonState = { mode: Mode.Start, stack: "", key: false, aux: 0, count: 0, ws: 0 };

const isWs = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);

/** Mutable copy the byte loop works on. */
interface Cursor {
  mode: Mode;
  stack: string;
  key: boolean;
  aux: number;
  count: number;
  ws: number;
}

/** The state after `bytes`, or null when they cannot continue a JSON object from `s`. */
export function advanceJson(s: JsonState, bytes: Uint8Array): JsonState | null {
  const c: Cursor = { ...s };
  for (let i = 0; i < bytes.length; i++) if (!step(c, bytes[i]!)) return null;
  return c;
}

/** Whether the reply can end here: the object is closed. */
export function jsonComplete(s: JsonState): boolean {
  return s.mode === Mode.Done;
}

/** One byte; false when it cannot come next. */
function step(c: Cursor, b: number): boolean {
  if (isWs(b) && c.mode <= Mode.AfterValue) {
    c.ws++;
    return c.ws <= (c.mode === Mode.Start ? MAX_LEADING_WHITESPACE : MAX_WHITESPACE_RUN);
  }
  if (c.mode !== Mode.Str && c.mode !== Mode.Escape && c.mode !== Mode.Unicode) c.ws = 0;
  switch (c.mode) {
    case Mode.Start:
      if (b !== 0x7b) return false;
      c.stack = "o";
      c.mode = Mode.ObjectStart;
      return true;
    case Mode.ObjectStart:
      if (b === 0x7d) return close(c, "o");
      return startKey(c, b);
    case Mode.Key:
      return startKey(c, b);
    case Mode.Colon:
      if (b !== 0x3a) return false;
      c.mode = Mode.Value;
      return true;
    case Mode.Value:
      // An array's first value may instead be its end.
      if (b === 0x5d && c.aux === 1) return close(c, "a");
      return startValue(c, b);
    case Mode.AfterValue:
      if (b === 0x2c) {
        c.mode = c.stack.endsWith("o") ? Mode.Key : Mode.Value;
        c.aux = 0;
        return true;
      }
      return close(c, b === 0x7d ? "o" : b === 0x5d ? "a" : "");
    case Mode.Str:
      if (b === 0x22) {
        c.mode = c.key ? Mode.Colon : Mode.AfterValue;
        c.key = false;
        return true;
      }
      if (b === 0x5c) c.mode = Mode.Escape;
      return b >= 0x20;
    case Mode.Escape:
      if (b === 0x75) {
        c.mode = Mode.Unicode;
        c.aux = 4;
        return true;
      }
      c.mode = Mode.Str;
      return (
        b === 0x22 ||
        b === 0x5c ||
        b === 0x2f ||
        b === 0x62 ||
        b === 0x66 ||
        b === 0x6e ||
        b === 0x72 ||
        b === 0x74
      );
    case Mode.Unicode:
      if (!isHex(b)) return false;
      if (--c.aux === 0) c.mode = Mode.Str;
      return true;
    case Mode.Num:
      return number(c, b);
    case Mode.Literal: {
      const lit = LITERALS[c.aux]!;
      if (b !== lit[c.count]) return false;
      if (++c.count === lit.length) c.mode = Mode.AfterValue;
      return true;
    }
    case Mode.Done:
      return false;
  }
}

function startKey(c: Cursor, b: number): boolean {
  if (b !== 0x22) return false;
  c.mode = Mode.Str;
  c.key = true;
  return true;
}

function startValue(c: Cursor, b: number): boolean {
  c.aux = 0;
  if (b === 0x22) {
    c.mode = Mode.Str;
    c.key = false;
    return true;
  }
  if (b === 0x7b) {
    c.stack += "o";
    c.mode = Mode.ObjectStart;
    return true;
  }
  if (b === 0x5b) {
    c.stack += "a";
    c.mode = Mode.Value;
    c.aux = 1; // `]` may close it at once
    return true;
  }
  if (b === 0x2d || isDigit(b)) {
    c.mode = Mode.Num;
    c.aux = b === 0x2d ? NUM_MINUS : b === 0x30 ? NUM_ZERO : NUM_INT;
    return true;
  }
  const lit = LITERALS.findIndex((l) => l[0] === b);
  if (lit < 0) return false;
  c.mode = Mode.Literal;
  c.aux = lit;
  c.count = 1;
  return true;
}

/** Closes the innermost container, which must be `kind`; the object at the top level ends the reply. */
function close(c: Cursor, kind: string): boolean {
  if (!kind || !c.stack.endsWith(kind)) return false;
  c.stack = c.stack.slice(0, -1);
  c.mode = c.stack ? Mode.AfterValue : Mode.Done;
  c.aux = 0;
  return true;
}

/** A number's next byte; a byte that ends it is read as what follows the value. */
function number(c: Cursor, b: number): boolean {
  const part = c.aux;
  if (isDigit(b)) {
    if (part === NUM_ZERO) return false; // no leading zeros
    c.aux =
      part === NUM_MINUS
        ? b === 0x30
          ? NUM_ZERO
          : NUM_INT
        : part === NUM_DOT
          ? NUM_FRAC
          : part === NUM_E || part === NUM_E_SIGN
            ? NUM_EXP
            : part;
    return true;
  }
  if (b === 0x2e) {
    if (part !== NUM_ZERO && part !== NUM_INT) return false;
    c.aux = NUM_DOT;
    return true;
  }
  if (b === 0x65 || b === 0x45) {
    if (part !== NUM_ZERO && part !== NUM_INT && part !== NUM_FRAC) return false;
    c.aux = NUM_E;
    return true;
  }
  if (b === 0x2b || b === 0x2d) {
    if (part !== NUM_E) return false;
    c.aux = NUM_E_SIGN;
    return true;
  }
  // The number is complete only after a digit.
  if (part !== NUM_ZERO && part !== NUM_INT && part !== NUM_FRAC && part !== NUM_EXP) return false;
  c.mode = Mode.AfterValue;
  c.aux = 0;
  if (isWs(b)) {
    c.ws = 1;
    return true;
  }
  return step(c, b);
}

/**
 * Whether `token` may come next in a reply in state `s`: its bytes continue the object, or it
 * ends the sequence (`isEnd`) once the object is closed. Special tokens that do not end it never
 * may (their text is not the model's JSON). Returns the state after it (the same state for an
 * ending token), or null.
 */
export function acceptToken(
  s: JsonState,
  token: number,
  pieces: TokenPieces,
  isEnd: (token: number) => boolean,
): JsonState | null {
  if (isEnd(token)) return jsonComplete(s) ? s : null;
  if (pieces.isSpecial(token)) return null;
  const bytes = pieces.bytes(token);
  if (bytes.length === 0) return null;
  return advanceJson(s, bytes);
}
