import type { TokenPieces } from "../tokenizer/types.js";
import { firstBytes, type SchemaNode, type SchemaProp } from "./json-schema.js";

/**
 * Structured outputs: a reply that is one JSON value of a schema (json-schema.ts), or for JSON mode
 * (response_format json_object) any JSON object. A byte-level pushdown automaton walks the schema
 * and says whether a token's bytes can continue the reply so far; the sampler draws only tokens it
 * accepts, and end-of-sequence only once the value is whole. Strings pass any byte but controls,
 * quotes and backslashes unescaped (UTF-8 is bytes like any other), so no character decoding is
 * needed. Runs of whitespace are bounded (see MAX_WHITESPACE_RUN) and the reply ends as soon as
 * the value does.
 */

/** Any value, and the nodes a value of it starts (made once: startValue runs for every byte checked). */
const ANY: SchemaNode = { kind: "any" };
const ANY_STRING: SchemaNode = { kind: "string", enum: null };
const ANY_NUMBER: SchemaNode = { kind: "number", integer: false };
const ANY_ARRAY: SchemaNode = { kind: "array", items: ANY, min: 0, max: Number.POSITIVE_INFINITY };

/** JSON mode's schema: an object with any keys and values. */
export const JSON_OBJECT: SchemaNode = { kind: "object", props: [], extra: ANY };

/**
 * Whitespace allowed in one run inside the value (a newline and the indentation of pretty-printed
 * JSON), before it (a space or newline the first token may carry) and after it (none). A model that
 * would rather not write JSON otherwise fills its reply with whitespace, the likeliest bytes allowed.
 */
const MAX_WHITESPACE_RUN = 24;
const MAX_LEADING_WHITESPACE = 2;

type Frame =
  /** A value's first byte. */
  | { readonly t: "value"; readonly node: SchemaNode }
  /**
   * Inside a string; `cand`: the allowed strings (an enum's, or an object's keys) still matching
   * its bytes so far, null for any string; `esc`: 0, 1 after a backslash, 2-5 in \uXXXX.
   */
  | {
      readonly t: "str";
      readonly texts: readonly Uint8Array[] | null;
      readonly cand: readonly number[] | null;
      readonly pos: number;
      readonly esc: number;
      /** A key of the object below it. */
      readonly key: boolean;
    }
  | { readonly t: "num"; readonly integer: boolean; readonly part: number }
  | {
      readonly t: "lit";
      readonly texts: readonly Uint8Array[];
      readonly cand: readonly number[];
      readonly pos: number;
    }
  | {
      readonly t: "obj";
      readonly node: Extract<SchemaNode, { kind: "object" }>;
      /** The first declared property that may still come. */
      readonly next: number;
      /** open: after `{`; comma: after `,`; colon: after a key; after: after a value. */
      readonly phase: "open" | "comma" | "colon" | "after";
      /** The property whose key was just read (-1: an undeclared key). */
      readonly chosen: number;
      /** Which string of its enum the last enum-valued property took (-1: none yet); a switch reads it. */
      readonly tag: number;
    }
  | {
      readonly t: "arr";
      readonly node: Extract<SchemaNode, { kind: "array" }>;
      readonly count: number;
      readonly phase: "open" | "comma" | "after";
    };

/** The automaton's state: immutable, so checking a token copies only what it changes. */
export interface JsonState {
  readonly stack: readonly Frame[];
  /** Whitespace bytes in the current run. */
  readonly ws: number;
  /** Whether any non-whitespace byte has been read. */
  readonly started: boolean;
  readonly done: boolean;
}

/** The state before a reply of `node`. */
export function jsonStart(node: SchemaNode): JsonState {
  return { stack: [{ t: "value", node }], ws: 0, started: false, done: false };
}

// Number parts: what has been read.
const NUM_MINUS = 0;
const NUM_ZERO = 1;
const NUM_INT = 2;
const NUM_DOT = 3;
const NUM_FRAC = 4;
const NUM_E = 5;
const NUM_E_SIGN = 6;
const NUM_EXP = 7;
const NUM_WHOLE = new Set([NUM_ZERO, NUM_INT, NUM_FRAC, NUM_EXP]);

const utf8 = new TextEncoder();
const ANY_LITERAL: SchemaNode = {
  kind: "literal",
  texts: ["true", "false", "null"].map((s) => utf8.encode(s)),
};

const isWs = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);

/** A mutable copy of a state the byte loop works on (its own copy of the stack). */
interface Cursor {
  stack: Frame[];
  ws: number;
  started: boolean;
  done: boolean;
}

/** The state after `bytes`, or null when they cannot continue the value from `s`. */
export function advanceJson(s: JsonState, bytes: Uint8Array): JsonState | null {
  const c: Cursor = { stack: s.stack.slice(), ws: s.ws, started: s.started, done: s.done };
  for (let i = 0; i < bytes.length; i++) if (!step(c, bytes[i]!)) return null;
  return c;
}

/** Whether the reply can end here: the value is whole (a number or literal at the top level may still go on). */
export function jsonComplete(s: JsonState): boolean {
  if (s.done) return true;
  if (s.stack.length !== 1) return false;
  const f = s.stack[0]!;
  if (f.t === "num") return NUM_WHOLE.has(f.part);
  return f.t === "lit" && f.cand.some((i) => f.texts[i]!.length === f.pos);
}

const top = (c: Cursor) => c.stack[c.stack.length - 1]!;
const replace = (c: Cursor, f: Frame) => {
  c.stack[c.stack.length - 1] = f;
};

/** Ends the value on top: its container expects what follows a value; at the bottom, the reply is done. */
function finishValue(c: Cursor): void {
  c.stack.pop();
  if (c.stack.length === 0) c.done = true;
}

/** One byte; false when it cannot come next. */
function step(c: Cursor, b: number): boolean {
  if (c.done) return false;
  const f = top(c);
  if (isWs(b) && (f.t === "value" || f.t === "obj" || f.t === "arr")) {
    c.ws++;
    return c.ws <= (c.started ? MAX_WHITESPACE_RUN : MAX_LEADING_WHITESPACE);
  }
  c.started = true;
  c.ws = 0;
  switch (f.t) {
    case "value":
      return startValue(c, f.node, b);
    case "str":
      return stringByte(c, f, b);
    case "num":
      return numberByte(c, f, b);
    case "lit":
      return literalByte(c, f, b);
    case "obj":
      return objectByte(c, f, b);
    case "arr":
      return arrayByte(c, f, b);
  }
}

/** The first byte of a value of `node`, replacing the value frame on top. */
function startValue(c: Cursor, node: SchemaNode, b: number): boolean {
  switch (node.kind) {
    case "ref":
      return startValue(c, node.resolve(), b);
    case "union": {
      const option = node.options.find((o) => firstBytes(o).has(b));
      return option !== undefined && startValue(c, option, b);
    }
    case "switch":
      return false; // resolved by its object (objectByte) before its value starts
    case "any":
      if (b === 0x22) return startValue(c, ANY_STRING, b);
      if (b === 0x7b) return startValue(c, JSON_OBJECT, b);
      if (b === 0x5b) return startValue(c, ANY_ARRAY, b);
      if (b === 0x2d || isDigit(b)) return startValue(c, ANY_NUMBER, b);
      return startValue(c, ANY_LITERAL, b);
    case "string":
      if (b !== 0x22) return false;
      replace(c, {
        t: "str",
        texts: node.enum,
        cand: node.enum ? node.enum.map((_, i) => i) : null,
        pos: 0,
        esc: 0,
        key: false,
      });
      return true;
    case "number":
      if (b !== 0x2d && !isDigit(b)) return false;
      replace(c, {
        t: "num",
        integer: node.integer,
        part: b === 0x2d ? NUM_MINUS : b === 0x30 ? NUM_ZERO : NUM_INT,
      });
      return true;
    case "literal": {
      const cand = node.texts.flatMap((t, i) => (t[0] === b ? [i] : []));
      if (cand.length === 0) return false;
      replace(c, { t: "lit", texts: node.texts, cand, pos: 1 });
      return true;
    }
    case "object":
      if (b !== 0x7b) return false;
      replace(c, { t: "obj", node, next: 0, phase: "open", chosen: -1, tag: -1 });
      return true;
    case "array":
      if (b !== 0x5b) return false;
      replace(c, { t: "arr", node, count: 0, phase: "open" });
      return true;
  }
}

function stringByte(c: Cursor, f: Extract<Frame, { t: "str" }>, b: number): boolean {
  if (f.cand) {
    // An enum or an object's keys: the bytes must spell one of them exactly (escapes included).
    if (b === 0x22) {
      const whole = f.cand.find((i) => f.texts![i]!.length === f.pos);
      if (whole === undefined) return false;
      return endString(c, f, whole);
    }
    const cand = f.cand.filter((i) => f.texts![i]![f.pos] === b);
    if (cand.length === 0) return false;
    replace(c, { ...f, cand, pos: f.pos + 1 });
    return true;
  }
  if (f.esc === 1) {
    if (b === 0x75) {
      replace(c, { ...f, esc: 5 });
      return true;
    }
    replace(c, { ...f, esc: 0 });
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
  }
  if (f.esc > 1) {
    if (!isHex(b)) return false;
    replace(c, { ...f, esc: f.esc === 2 ? 0 : f.esc - 1 });
    return true;
  }
  if (b === 0x22) return endString(c, f, -1);
  if (b === 0x5c) replace(c, { ...f, esc: 1 });
  return b >= 0x20;
}

/**
 * A string's closing quote: a key hands its choice to the object below, a value ends (an enum's
 * choice becoming the object's tag, which a later switch-valued property reads).
 */
function endString(c: Cursor, f: Extract<Frame, { t: "str" }>, chosen: number): boolean {
  if (!f.key) {
    finishValue(c);
    const below = c.stack[c.stack.length - 1];
    if (chosen >= 0 && below?.t === "obj") replace(c, { ...below, tag: chosen });
    return true;
  }
  c.stack.pop();
  const o = top(c) as Extract<Frame, { t: "obj" }>;
  replace(c, { ...o, phase: "colon", chosen });
  return true;
}

function numberByte(c: Cursor, f: Extract<Frame, { t: "num" }>, b: number): boolean {
  const part = f.part;
  let next = -1;
  if (isDigit(b)) {
    if (part === NUM_ZERO) return false; // no leading zeros
    next =
      part === NUM_MINUS
        ? b === 0x30
          ? NUM_ZERO
          : NUM_INT
        : part === NUM_DOT
          ? NUM_FRAC
          : part === NUM_E || part === NUM_E_SIGN
            ? NUM_EXP
            : part;
  } else if (b === 0x2e && !f.integer && (part === NUM_ZERO || part === NUM_INT)) next = NUM_DOT;
  else if (
    (b === 0x65 || b === 0x45) &&
    !f.integer &&
    (part === NUM_ZERO || part === NUM_INT || part === NUM_FRAC)
  )
    next = NUM_E;
  else if ((b === 0x2b || b === 0x2d) && part === NUM_E) next = NUM_E_SIGN;
  if (next >= 0) {
    replace(c, { ...f, part: next });
    return true;
  }
  // Any other byte ends a whole number and is read as what follows it.
  if (!NUM_WHOLE.has(part)) return false;
  finishValue(c);
  return step(c, b);
}

function literalByte(c: Cursor, f: Extract<Frame, { t: "lit" }>, b: number): boolean {
  const cand = f.cand.filter((i) => f.texts[i]![f.pos] === b);
  if (cand.length > 0) {
    replace(c, { ...f, cand, pos: f.pos + 1 });
    return true;
  }
  // A byte that continues no candidate ends a whole one and is read as what follows it.
  if (!f.cand.some((i) => f.texts[i]!.length === f.pos)) return false;
  finishValue(c);
  return step(c, b);
}

/** The declared properties that may come next: from `next` up to the first required one. */
function nextKeys(o: Extract<Frame, { t: "obj" }>): number[] {
  const out: number[] = [];
  const props: readonly SchemaProp[] = o.node.props;
  for (let i = o.next; i < props.length; i++) {
    out.push(i);
    if (props[i]!.required) break;
  }
  return out;
}

function requiredLeft(o: Extract<Frame, { t: "obj" }>): boolean {
  for (let i = o.next; i < o.node.props.length; i++) if (o.node.props[i]!.required) return true;
  return false;
}

function objectByte(c: Cursor, o: Extract<Frame, { t: "obj" }>, b: number): boolean {
  const free = o.node.extra !== null;
  if (o.phase === "colon") {
    if (b !== 0x3a) return false;
    let node = o.chosen >= 0 ? o.node.props[o.chosen]!.node : o.node.extra!;
    if (node.kind === "switch") {
      if (o.tag < 0 || o.tag >= node.cases.length) return false;
      node = node.cases[o.tag]!;
    }
    replace(c, { ...o, phase: "after", next: o.chosen >= 0 ? o.chosen + 1 : o.next });
    c.stack.push({ t: "value", node });
    return true;
  }
  if (b === 0x7d && (o.phase === "open" || o.phase === "after")) {
    if (requiredLeft(o)) return false;
    finishValue(c);
    return true;
  }
  if (b === 0x2c && o.phase === "after") {
    if (!free && nextKeys(o).length === 0) return false;
    replace(c, { ...o, phase: "comma" });
    return true;
  }
  if (b !== 0x22 || o.phase === "after") return false;
  // A key: one of the declared properties that may come next, or (declaring none) any string.
  const keys = free ? null : nextKeys(o);
  if (keys?.length === 0) return false;
  const texts = free ? null : o.node.props.map((p) => p.key);
  c.stack.push({ t: "str", texts, cand: keys, pos: 0, esc: 0, key: true });
  return true;
}

function arrayByte(c: Cursor, a: Extract<Frame, { t: "arr" }>, b: number): boolean {
  const { min, max, items } = a.node;
  if (b === 0x5d && a.phase !== "comma") {
    if (a.count < min) return false;
    finishValue(c);
    return true;
  }
  if (b === 0x2c) {
    if (a.phase !== "after" || a.count >= max) return false;
    replace(c, { ...a, phase: "comma" });
    return true;
  }
  if (a.phase === "after" || a.count >= max) return false;
  replace(c, { ...a, phase: "after", count: a.count + 1 });
  c.stack.push({ t: "value", node: items });
  return step(c, b);
}

/**
 * Whether `token` may come next in a reply in state `s`: its bytes continue the value, or it
 * ends the sequence (`isEnd`) once the value is whole. Special tokens that do not end it never
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

/**
 * Each token's first two bytes, per vocabulary: first[id] (256: none, or a special token) and
 * second[id] (256: the token is one byte).
 */
interface LeadingBytes {
  readonly first: Uint16Array;
  readonly second: Uint16Array;
}
const leadingBytes = new WeakMap<TokenPieces, LeadingBytes>();

function leadingByteTables(pieces: TokenPieces, vocabSize: number): LeadingBytes {
  let t = leadingBytes.get(pieces);
  if (!t || t.first.length !== vocabSize) {
    const first = new Uint16Array(vocabSize);
    const second = new Uint16Array(vocabSize);
    for (let id = 0; id < vocabSize; id++) {
      const bytes = pieces.isSpecial(id) ? undefined : pieces.bytes(id);
      first[id] = bytes?.[0] ?? 256;
      second[id] = bytes?.[1] ?? 256;
    }
    t = { first, second };
    leadingBytes.set(pieces, t);
  }
  return t;
}

/** Checks a predicate makes one by one before it builds its second-byte rows (a pass over the vocabulary). */
const SECOND_BYTE_AFTER = 64;

/**
 * The predicate the sampler asks of each candidate in state `s`: acceptToken, after checks of the
 * token's first byte against the 256 the state allows and, once the predicate is asked often (a
 * pass over the whole vocabulary), of its second byte against those the first allows (rows built
 * as first bytes come up). Most tokens fail there, so such a pass runs the automaton for few.
 */
export function allowedTokens(
  s: JsonState,
  pieces: TokenPieces,
  vocabSize: number,
  /** 1 for each token that ends the sequence. */
  ends: Uint8Array,
): (token: number) => boolean {
  const { first, second } = leadingByteTables(pieces, vocabSize);
  const one = new Uint8Array(1);
  const after = new Array<JsonState | null>(257).fill(null);
  for (let b = 0; b < 256; b++) {
    one[0] = b;
    after[b] = advanceJson(s, one);
  }
  /** Per first byte, the second bytes the state then allows (1), built on demand; 256: none needed. */
  const rows = new Array<Uint8Array | undefined>(256);
  const row = (b: number): Uint8Array => {
    let r = rows[b];
    if (!r) {
      r = new Uint8Array(257).fill(1);
      const state = after[b]!;
      for (let c = 0; c < 256; c++) {
        one[0] = c;
        r[c] = advanceJson(state, one) ? 1 : 0;
      }
      rows[b] = r;
    }
    return r;
  };
  const complete = jsonComplete(s);
  let asked = 0;
  return (t) => {
    const b = first[t]!;
    // End tokens are special (no first byte) where they are not a request's stop_token_ids.
    if (b === 256 || ends[t] === 1) return ends[t] === 1 ? complete : false;
    if (after[b] === null) return false;
    if (++asked > SECOND_BYTE_AFTER && row(b)[second[t]!] === 0) return false;
    // The first byte is read already: the rest goes on from the state it left.
    return advanceJson(after[b]!, pieces.bytes(t).subarray(1)) !== null;
  };
}
