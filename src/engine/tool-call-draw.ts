import type { TokenPieces } from "../tokenizer/types.js";
import type { ToolCallConstraint } from "./api.js";
import { acceptToken, advanceJson, allowedTokens, type JsonState, jsonStart } from "./json-constraint.js";
import type { SchemaNode } from "./json-schema.js";
import type { Sampler } from "./sampler.js";
import type { Sequence } from "./sequence.js";
import { toolArgNodes, toolCallNode } from "./tool-call-schema.js";

const utf8 = new TextEncoder();

/** What one draw works with (the output processor keeps one and refills it: nothing made per token). */
export interface DrawContext {
  sampler: Sampler;
  logits: Float32Array;
  /** Where the sequence's row starts in `logits`. */
  off: number;
  seq: Sequence;
  pieces: TokenPieces;
  vocabSize: number;
  /** 1 for each token that ends the sequence. */
  ends: Uint8Array;
}

const free = (d: DrawContext) => d.sampler.sample(d.logits, d.off, d.seq);
const only = (d: DrawContext, ok: (t: number) => boolean) =>
  d.sampler.sampleAllowed(d.logits, d.off, d.seq, ok);
const NO_ENDS = (_token: number) => false;

/**
 * One reply's strict tool calls (a request whose tools are strict): text is drawn freely, and each
 * call under its automaton (tool-call-schema.ts), so its name is a tool's and its arguments a
 * value of that tool's schema. A call starts at the format's open token (Hermes `<tool_call>`:
 * its close token is drawn as soon as the object is whole, and text may follow; Mistral's
 * `[TOOL_CALLS]`: a list of calls that ends the reply) or, without one (Llama 3), is the whole
 * reply: its first token is either text or the start of a call, which then ends the reply. Where a
 * header names the function (harmony, Mistral's NAME[ARGS]), the name is drawn among the tools'
 * and the body under its schema (drawNamed). Where the prompt opened the call (tool_choice
 * required or named), the reply starts inside it.
 */
export class ToolCallDraw {
  private readonly node: SchemaNode;
  /** Inside a call: the automaton's state; null outside. */
  private call: JsonState | null = null;
  /** The call's object is whole: the close token comes next. */
  private closeNext = false;
  /** Llama 3 with the choice left to the model: nothing but whitespace drawn yet, text or call. */
  private undecided: JsonState | null = null;
  private noEnds: Uint8Array | null = null;
  /** Harmony: each tool's arguments, and the header so far (null: in a message's body). */
  private readonly argNodes: SchemaNode[];
  private readonly names: readonly string[];
  private header: string | null = null;

  constructor(private readonly c: ToolCallConstraint) {
    this.argNodes = toolArgNodes(c);
    this.node = toolCallNode(c, this.argNodes);
    this.names = c.tools.map((t) => t.name);
    const start = jsonStart(this.node);
    if (c.named) {
      const i = c.tools.findIndex((t) => t.name === c.named!.calling);
      if (i >= 0) this.call = jsonStart(this.argNodes[i]!);
      else this.header = c.named.header;
    } else if (c.opened !== null) this.call = advanceJson(start, utf8.encode(c.opened));
    else if (c.open === null) this.undecided = start;
  }

  /**
   * The next token. `ends`: the tokens that end the sequence (one flag a token); a call ends the
   * reply only where the format has no close token.
   */
  draw(d: DrawContext): number {
    const c = this.c;
    if (this.closeNext) {
      this.closeNext = false;
      const token = only(d, (t) => t === c.close);
      return token < 0 ? c.close! : token;
    }
    if (this.call) return this.drawInCall(this.call, d);
    if (this.undecided) return this.drawFirst(this.undecided, d);
    if (c.named) return this.drawNamed(d);
    const token = free(d);
    if (token === c.open) this.call = jsonStart(this.node);
    return token;
  }

  private drawInCall(state: JsonState, d: DrawContext): number {
    // A call that ends the reply (Llama 3, Mistral's list) may be followed by an end token; one
    // with a close token, or followed by text (Mistral's NAME[ARGS]), by nothing inside it.
    const endsReply = this.c.close === null && this.c.named === null;
    const isEnd = endsReply ? (t: number) => d.ends[t] === 1 : NO_ENDS;
    if (!endsReply && this.noEnds?.length !== d.vocabSize) this.noEnds = new Uint8Array(d.vocabSize);
    const allowed = allowedTokens(state, d.pieces, d.vocabSize, endsReply ? d.ends : this.noEnds!);
    const token = only(d, allowed);
    // No token continues the call (a vocabulary without the bytes it needs): the reply ends.
    if (token < 0) return d.ends.indexOf(1) >= 0 ? d.ends.indexOf(1) : free(d);
    const next = acceptToken(state, token, d.pieces, isEnd)!;
    this.call = next;
    if (next.done && !endsReply) {
      this.call = null;
      this.closeNext = this.c.close !== null;
    }
    return token;
  }

  /**
   * Calls named in a header, outside a call: text is drawn freely; in a header, a function named
   * after the recipient prefix (harmony's `to=functions.`; Mistral's whole header) must be one of
   * the tools, its text checked as it grows; a special token may end the header only once the
   * name is whole (in Mistral's, only [ARGS]), and the body after a header naming a tool is its
   * arguments.
   */
  private drawNamed(d: DrawContext): number {
    const h = this.c.named!;
    const header = this.header;
    if (header === null) {
      const token = free(d);
      if (token === h.start) this.header = "";
      return token;
    }
    const names = this.names;
    const r = h.recipient;
    const token = only(d, (t) =>
      d.pieces.isSpecial(t)
        ? calledName(header, r, names, true) !== undefined && (r !== "" || t === h.message)
        : calledName(header + text(d.pieces, t), r, names, false) !== undefined,
    );
    if (token < 0) return free(d);
    if (token === h.message) {
      this.header = null;
      const name = calledName(header, r, names, true);
      if (name) this.call = jsonStart(this.argNodes[names.indexOf(name)]!);
    } else if (token === h.start) this.header = "";
    else if (!d.pieces.isSpecial(token)) this.header = header + text(d.pieces, token);
    return token;
  }

  /** Llama 3, the model choosing: a token that starts a call enters it, any other is text. */
  private drawFirst(state: JsonState, d: DrawContext): number {
    const allowed = allowedTokens(state, d.pieces, d.vocabSize, d.ends);
    const token = only(d, (t) => !callLike(d.pieces, t) || allowed(t));
    if (token < 0) return free(d);
    const bytes = d.pieces.isSpecial(token) ? null : d.pieces.bytes(token);
    const rest = bytes ? firstNonSpace(bytes) : -1;
    if (rest < 0 && bytes && bytes.length > 0) {
      // Whitespace only: still either (whitespace the call's automaton no longer takes means text).
      this.undecided = advanceJson(state, bytes);
      return token;
    }
    this.undecided = null;
    if (callLike(d.pieces, token)) this.call = acceptToken(state, token, d.pieces, (t) => d.ends[t] === 1);
    return token;
  }
}

/** Index of the first byte that is not JSON whitespace, or -1. */
function firstNonSpace(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return i;
  }
  return -1;
}

/** Whether a token's text starts a JSON object (after whitespace): a Llama 3 reply that does is a call. */
function callLike(pieces: TokenPieces, token: number): boolean {
  if (pieces.isSpecial(token)) return false;
  const bytes = pieces.bytes(token);
  const i = firstNonSpace(bytes);
  return i >= 0 && bytes[i] === 0x7b;
}

/** A token's text, a char a byte (names are ASCII; other bytes only need to stay themselves). */
function text(pieces: TokenPieces, token: number): string {
  return String.fromCharCode(...pieces.bytes(token));
}

/**
 * The function a header names after `recipient`: null where it names none, undefined where the
 * name is not (yet) one of `names`. `whole`: the header ends here, so the name must be complete.
 */
function calledName(
  header: string,
  recipient: string,
  names: readonly string[],
  whole: boolean,
): string | null | undefined {
  const i = header.indexOf(recipient);
  if (i < 0) return null;
  const rest = header.slice(i + recipient.length);
  // After a recipient prefix the name ends at a space or tag; a header that is only a name ends at its token.
  const name = recipient === "" ? rest : /^[^\s<]*/.exec(rest)![0];
  const ended = whole || rest.length > name.length;
  if (ended) return names.includes(name) ? name : undefined;
  return names.some((n) => n.startsWith(name)) ? name : undefined;
}
