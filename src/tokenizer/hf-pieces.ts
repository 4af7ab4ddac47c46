import type { TokenPieces } from "./types.js";
import { utf8Encoder } from "./utf8.js";

/** How a tokenizer.json decoder turns token strings into bytes, for the decoders LLMs use. */
type DecoderShape =
  | { readonly kind: "byteLevel" }
  | {
      readonly kind: "sentencePiece";
      readonly spaceMark: string;
      readonly byteFallback: boolean;
      readonly strip: boolean;
    };

interface DecoderConfig {
  type?: string;
  decoders?: DecoderConfig[];
  pattern?: { String?: string };
  content?: string;
  start?: number;
  stop?: number;
  replacement?: string;
  prepend_scheme?: string;
  add_prefix_space?: boolean;
}

/**
 * Recognises ByteLevel (GPT-2 / Llama 3 / Qwen) and SentencePiece-style decoders (Replace "▁"→" ",
 * ByteFallback, Fuse, Strip one leading space; or Metaspace). Anything else returns null and the
 * detokenizer falls back to re-decoding.
 */
export function describeDecoder(decoder: unknown): DecoderShape | null {
  const parts = flatten(decoder as DecoderConfig | null);
  if (parts === null || parts.length === 0) return null;
  if (parts.length === 1 && parts[0]!.type === "ByteLevel") return { kind: "byteLevel" };
  let spaceMark: string | null = null;
  let byteFallback = false;
  let strip = false;
  for (const d of parts) {
    switch (d.type) {
      case "Replace":
        if (d.pattern?.String === undefined || d.content !== " " || spaceMark !== null) return null;
        spaceMark = d.pattern.String;
        break;
      case "ByteFallback":
        byteFallback = true;
        break;
      case "Fuse":
        break;
      case "Strip":
        if (d.content !== " " || d.start !== 1 || (d.stop ?? 0) !== 0) return null;
        strip = true;
        break;
      case "Metaspace":
        if (spaceMark !== null) return null;
        spaceMark = d.replacement ?? "▁";
        strip = d.prepend_scheme !== undefined ? d.prepend_scheme !== "never" : d.add_prefix_space !== false;
        break;
      default:
        return null;
    }
  }
  return spaceMark === null ? null : { kind: "sentencePiece", spaceMark, byteFallback, strip };
}

function flatten(d: DecoderConfig | null): DecoderConfig[] | null {
  if (!d || typeof d !== "object") return null;
  if (d.type !== "Sequence") return [d];
  const out: DecoderConfig[] = [];
  for (const inner of d.decoders ?? []) {
    const f = flatten(inner);
    if (f === null) return null;
    out.push(...f);
  }
  return out;
}

/** GPT-2's byte↔character table, inverted: printable bytes stand for themselves, the rest for U+0100… */
function byteLevelCharToByte(): Map<string, number> {
  const map = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map.set(String.fromCharCode(printable ? b : 256 + extra++), b);
  }
  return map;
}

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;
const EMPTY = new Uint8Array(0);

/**
 * TokenPieces over a Hugging Face vocabulary. Bytes are computed on first use and cached, so
 * loading a 150k-token vocabulary costs nothing until tokens are streamed.
 */
export class HfTokenPieces implements TokenPieces {
  readonly stripsLeadingSpace: boolean;
  private readonly cache: (Uint8Array | undefined)[];
  private readonly charToByte: Map<string, number> | null;

  constructor(
    private readonly shape: DecoderShape,
    private readonly tokenOf: (id: number) => string | undefined,
    /** Added tokens are literal text (not byte-level encoded); these ids with their flags. */
    private readonly addedTokens: ReadonlyMap<number, { readonly special: boolean }>,
    vocabSize: number,
  ) {
    this.stripsLeadingSpace = shape.kind === "sentencePiece" && shape.strip;
    // Filled, not holey: a holey array this large would fall back to slow dictionary elements.
    this.cache = new Array<Uint8Array | undefined>(vocabSize).fill(undefined);
    this.charToByte = shape.kind === "byteLevel" ? byteLevelCharToByte() : null;
  }

  isSpecial(id: number): boolean {
    return this.addedTokens.get(id)?.special === true;
  }

  bytes(id: number): Uint8Array {
    const hit = this.cache[id];
    if (hit !== undefined) return hit;
    const token = Number.isInteger(id) && id >= 0 ? this.tokenOf(id) : undefined;
    if (token === undefined) return EMPTY;
    const b = this.compute(id, token);
    if (id < this.cache.length) this.cache[id] = b;
    return b;
  }

  private compute(id: number, token: string): Uint8Array {
    if (this.shape.kind === "byteLevel") {
      if (this.addedTokens.has(id)) return utf8Encoder.encode(token);
      const out = new Uint8Array(token.length);
      let n = 0;
      for (const ch of token) {
        const b = this.charToByte!.get(ch);
        if (b === undefined) return utf8Encoder.encode(token); // not byte-level text: keep as is
        out[n++] = b;
      }
      return out.subarray(0, n);
    }
    const m = this.shape.byteFallback ? BYTE_TOKEN.exec(token) : null;
    if (m) return Uint8Array.of(Number.parseInt(m[1]!, 16));
    return utf8Encoder.encode(token.replaceAll(this.shape.spaceMark, " "));
  }
}
