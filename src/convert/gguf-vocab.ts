import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import type { LoadedModel } from "../model/types.js";
import { readLlama2cVocab } from "../tokenizer/llama2c-tokenizer.js";
import { TokenType } from "./gguf-format.js";
import { type GgufKv, gguf } from "./gguf-writer.js";

/** The tokenizer as GGUF describes it (tokenizer.ggml.*). */
export interface GgufVocab {
  /** "llama": SentencePiece-style pieces with scores; "gpt2": byte-level BPE with merges. */
  readonly model: "llama" | "gpt2";
  /** llama.cpp's pre-tokenizer name (gpt2 vocabularies only). */
  readonly pre?: string;
  readonly tokens: readonly string[];
  readonly tokenTypes: Int32Array;
  readonly scores?: Float32Array;
  readonly merges?: readonly string[];
  readonly unknownId?: number;
  /** SentencePiece's dummy prefix: a space is prepended to the text before tokenizing. */
  readonly addSpacePrefix?: boolean;
  readonly chatTemplate?: string;
}

const SPACE_MARK = "\u2581"; // SentencePiece's "▁"
const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

/** Thrown for tokenizers GGUF export does not handle; the message says what was found. */
export class UnsupportedTokenizerError extends Error {
  constructor(where: string, reason: string) {
    super(`cannot export the tokenizer ${where} to GGUF: ${reason}`);
    this.name = "UnsupportedTokenizerError";
  }
}

/**
 * Reads the model's vocabulary from the files it was loaded from: a Hugging Face tokenizer.json
 * (`tokenizerDir`, default the model directory) or a llama2.c tokenizer.bin. The table is padded
 * with unused tokens up to the model's vocab size, since llama.cpp checks it against the embedding.
 */
export function extractVocab(model: LoadedModel, tokenizerDir?: string): GgufVocab {
  const n = model.config.vocabSize;
  if (model.source.kind === "llama2c") {
    if (!model.source.tokenizerPath)
      throw new UnsupportedTokenizerError(model.source.path, "no tokenizer.bin");
    return llama2cVocab(model.source.tokenizerPath, n);
  }
  if (model.source.kind === "hf") {
    return hfVocab(path.join(tokenizerDir ?? model.source.path, "tokenizer.json"), n, model);
  }
  throw new UnsupportedTokenizerError(
    model.source.label,
    "the random-weight demo model has no tokenizer file; export a Hugging Face directory or a llama2.c checkpoint",
  );
}

/** tokenizer.ggml.* metadata for a vocabulary, with the model's special ids and BOS/EOS behaviour. */
export function vocabMetadata(model: LoadedModel, vocab: GgufVocab): GgufKv[] {
  const tok = model.tokenizer;
  const kv: GgufKv[] = [{ key: "tokenizer.ggml.model", value: gguf.str(vocab.model) }];
  if (vocab.pre !== undefined) kv.push({ key: "tokenizer.ggml.pre", value: gguf.str(vocab.pre) });
  kv.push({ key: "tokenizer.ggml.tokens", value: gguf.array("string", vocab.tokens) });
  if (vocab.scores) kv.push({ key: "tokenizer.ggml.scores", value: gguf.array("float32", vocab.scores) });
  kv.push({ key: "tokenizer.ggml.token_type", value: gguf.array("int32", vocab.tokenTypes) });
  if (vocab.merges) kv.push({ key: "tokenizer.ggml.merges", value: gguf.array("string", vocab.merges) });
  const bos = tok.bosTokenId ?? model.config.bosTokenId;
  const eos = tok.eosTokenIds[0] ?? model.config.eosTokenIds[0];
  if (bos !== null && bos !== undefined)
    kv.push({ key: "tokenizer.ggml.bos_token_id", value: gguf.u32(bos) });
  if (eos !== undefined) kv.push({ key: "tokenizer.ggml.eos_token_id", value: gguf.u32(eos) });
  if (vocab.unknownId !== undefined) {
    kv.push({ key: "tokenizer.ggml.unknown_token_id", value: gguf.u32(vocab.unknownId) });
  }
  // What our tokenizer does is the truth: probe it rather than re-deriving the post-processor.
  const probe = tok.encode("a");
  const addBos = bos !== null && bos !== undefined && probe[0] === bos;
  const addEos = eos !== undefined && probe.length > 1 && probe.at(-1) === eos;
  kv.push({ key: "tokenizer.ggml.add_bos_token", value: gguf.bool(addBos) });
  kv.push({ key: "tokenizer.ggml.add_eos_token", value: gguf.bool(addEos) });
  if (vocab.addSpacePrefix !== undefined) {
    kv.push({ key: "tokenizer.ggml.add_space_prefix", value: gguf.bool(vocab.addSpacePrefix) });
  }
  if (vocab.chatTemplate) kv.push({ key: "tokenizer.chat_template", value: gguf.str(vocab.chatTemplate) });
  return kv;
}

function llama2cVocab(file: string, n: number): GgufVocab {
  const { pieces, scores } = readLlama2cVocab(file, { vocabSize: n });
  const special = ["<unk>", "<s>", "</s>"];
  const tokens: string[] = [];
  const types = new Int32Array(n);
  pieces.forEach((raw, id) => {
    if (id < special.length) {
      tokens.push(special[id]!);
      types[id] = id === 0 ? TokenType.unknown : TokenType.control;
      return;
    }
    const text = Buffer.from(raw).toString("utf8");
    tokens.push(text.replaceAll(" ", SPACE_MARK));
    types[id] = BYTE_PIECE.test(text) ? TokenType.byte : TokenType.normal;
  });
  return { model: "llama", tokens, tokenTypes: types, scores, unknownId: 0, addSpacePrefix: true };
}

interface AddedToken {
  readonly id: number;
  readonly content: string;
  readonly special?: boolean;
}

/** The parts of a Hugging Face tokenizer.json the export reads. */
interface TokenizerJson {
  readonly model?: {
    readonly type?: string;
    readonly vocab?: Record<string, number>;
    readonly merges?: (string | [string, string])[];
    readonly byte_fallback?: boolean;
    readonly unk_token?: string | null;
  };
  readonly added_tokens?: AddedToken[];
  readonly pre_tokenizer?: unknown;
  readonly decoder?: unknown;
}

function hfVocab(file: string, n: number, model: LoadedModel): GgufVocab {
  if (!existsSync(file)) throw new UnsupportedTokenizerError(file, "file not found");
  let json: TokenizerJson;
  try {
    json = JSON.parse(readFileSync(file, "utf8")) as TokenizerJson;
  } catch (err) {
    throw new UnsupportedTokenizerError(file, `not valid JSON (${(err as Error).message})`);
  }
  const m = json.model;
  if (m?.type !== "BPE" || typeof m.vocab !== "object" || m.vocab === null) {
    throw new UnsupportedTokenizerError(
      file,
      `model type ${String(m?.type)} (only BPE vocabularies are supported)`,
    );
  }
  const tokens: (string | undefined)[] = new Array(n);
  const put = (piece: string, id: number) => {
    if (!Number.isInteger(id) || id < 0 || id >= n) {
      throw new UnsupportedTokenizerError(
        file,
        `token "${piece}" has id ${id}, outside the model's vocab of ${n}`,
      );
    }
    tokens[id] = piece;
  };
  for (const [piece, id] of Object.entries(m.vocab)) put(piece, id);
  const added = json.added_tokens ?? [];
  for (const t of added) put(t.content, t.id);
  const merges = (m.merges ?? []).map((x) => (typeof x === "string" ? x : `${x[0]} ${x[1]}`));

  const byteLevel = mentions(json.pre_tokenizer, "ByteLevel") || mentions(json.decoder, "ByteLevel");
  const sentencePiece = !byteLevel && (m.byte_fallback === true || JSON.stringify(json).includes(SPACE_MARK));
  if (!byteLevel && !sentencePiece) {
    throw new UnsupportedTokenizerError(
      file,
      "a BPE that is neither byte-level (GPT-2 style) nor SentencePiece-style (▁ spaces, byte fallback)",
    );
  }
  const types = new Int32Array(n).fill(TokenType.normal);
  // Array.from visits the holes too (map would skip them): ids no file names are padding.
  const texts = Array.from(tokens, (t, id) => {
    if (t !== undefined) return t;
    types[id] = TokenType.unused;
    return `[PAD${id}]`;
  });
  for (const t of added) types[t.id] = t.special === false ? TokenType.userDefined : TokenType.control;
  const chatTemplate = readChatTemplate(path.dirname(file));
  const common = { tokens: texts, tokenTypes: types, ...(chatTemplate ? { chatTemplate } : {}) };

  if (byteLevel) return { ...common, model: "gpt2", pre: preTokenizerName(json.pre_tokenizer), merges };

  const unknownId = typeof m.unk_token === "string" ? tokens.indexOf(m.unk_token) : -1;
  if (unknownId >= 0) types[unknownId] = TokenType.unknown;
  texts.forEach((t, id) => {
    if (types[id] === TokenType.normal && BYTE_PIECE.test(t)) types[id] = TokenType.byte;
  });
  const bare = model.tokenizer.encode("a", { addSpecialTokens: false });
  return {
    ...common,
    model: "llama",
    scores: scoresFromMerges(texts, merges),
    ...(unknownId >= 0 ? { unknownId } : {}),
    addSpacePrefix: texts[bare[0] ?? -1]?.startsWith(SPACE_MARK) ?? false,
  };
}

/**
 * SentencePiece scores for a vocabulary converted to merges: llama.cpp's SPM tokenizer merges the
 * adjacent pair whose result scores highest, so a piece gets minus the rank of its first merge,
 * which replays the merge order. Pieces no merge produces never result from a merge there either;
 * multi-character ones get a score below every merge.
 */
function scoresFromMerges(tokens: readonly string[], merges: readonly string[]): Float32Array {
  const idOf = new Map<string, number>();
  tokens.forEach((t, id) => {
    if (!idOf.has(t)) idOf.set(t, id);
  });
  const scores = new Float32Array(tokens.length).fill(Number.NaN);
  merges.forEach((pair, rank) => {
    const id = idOf.get(pair.replace(" ", ""));
    if (id !== undefined && Number.isNaN(scores[id]!)) scores[id] = -rank;
  });
  for (let id = 0; id < scores.length; id++) {
    if (Number.isNaN(scores[id]!)) scores[id] = [...tokens[id]!].length > 1 ? -(merges.length + id) : 0;
  }
  return scores;
}

function mentions(node: unknown, type: string): boolean {
  return JSON.stringify(node ?? null).includes(`"type":"${type}"`);
}

/** llama.cpp's name for the pre-tokenizer's split rules (it refuses names it does not know). */
function preTokenizerName(pre: unknown): string {
  const text = JSON.stringify(pre ?? null);
  if (text.includes("\\\\p{N}{1,3}")) return "llama-bpe";
  if (text.includes('"Split"') && text.includes("\\\\p{N}")) return "qwen2";
  // Every digit on its own, then GPT-2's words (SmolLM's tokenizers, StarCoder's): llama.cpp's "smollm".
  if (mentions(pre, "Digits") && text.includes('"individual_digits":true')) return "smollm";
  return "gpt-2";
}

function readChatTemplate(dir: string): string | undefined {
  const file = path.join(dir, "tokenizer_config.json");
  if (!existsSync(file)) return undefined;
  try {
    const cfg = JSON.parse(readFileSync(file, "utf8")) as { chat_template?: unknown };
    return typeof cfg.chat_template === "string" ? cfg.chat_template : undefined;
  } catch {
    return undefined; // the loader already validated this file; a template is optional here
  }
}
