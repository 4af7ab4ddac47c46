import { parseHfTokenizerConfig } from "../tokenizer/hf-config.js";
import { createHfTokenizer } from "../tokenizer/hf-tokenizer.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { preTokenizerNames, preTokenizerRule } from "./gguf-pre-tokenizers.js";
import { GgufError, type GgufMetaValue } from "./gguf-reader.js";

/**
 * The tokenizer of a GGUF file (tokenizer.ggml.*), rebuilt as a Hugging Face tokenizer.json
 * object and run by the project's Hugging Face tokenizer:
 *  - "llama" (SentencePiece-style): pieces with scores become a BPE whose merges are ordered by
 *    the merged piece's score (transformers' own SentencePiece conversion), with byte fallback to
 *    the <0x..> tokens and the ▁ space marker (plus the dummy prefix when add_space_prefix);
 *  - "gpt2" (byte-level BPE): tokens and merges as stored, with the pre-tokenizer that
 *    tokenizer.ggml.pre names, as llama.cpp runs it (gguf-pre-tokenizers.ts; others are refused).
 */

const SPACE_MARK = "\u2581";
const TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export type MetaGetter = (key: string) => GgufMetaValue | undefined;

interface Vocab {
  readonly tokens: string[];
  readonly types: number[];
}

function readVocab(file: string, get: MetaGetter): Vocab {
  const tokens = get("tokenizer.ggml.tokens");
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === "string")) {
    throw new GgufError(file, 'metadata "tokenizer.ggml.tokens" is missing or not an array of strings');
  }
  const rawTypes = get("tokenizer.ggml.token_type");
  const types = Array.isArray(rawTypes) ? rawTypes.map(Number) : tokens.map(() => TYPE.normal);
  if (types.length !== tokens.length) {
    throw new GgufError(
      file,
      `tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`,
    );
  }
  return { tokens: tokens as string[], types };
}

function addedTokens(v: Vocab): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  v.types.forEach((type, id) => {
    if (type !== TYPE.control && type !== TYPE.userDefined && type !== TYPE.unknown) return;
    out.push({
      id,
      content: v.tokens[id],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: type !== TYPE.userDefined,
    });
  });
  return out;
}

function vocabObject(tokens: readonly string[]): Record<string, number> {
  const vocab: Record<string, number> = {};
  tokens.forEach((t, id) => {
    if (!Object.hasOwn(vocab, t)) vocab[t] = id;
  });
  return vocab;
}

/** Merges for a scored SentencePiece vocabulary: every split of a mergeable piece, best score first. */
function mergesFromScores(v: Vocab, scores: ArrayLike<number>): [string, string][] {
  const idOf = new Map<string, number>();
  v.tokens.forEach((t, id) => {
    const type = v.types[id];
    if ((type === TYPE.normal || type === TYPE.userDefined) && !idOf.has(t)) idOf.set(t, id);
  });
  const found: { l: string; r: string; score: number; li: number; ri: number }[] = [];
  for (const [piece, id] of idOf) {
    const chars = Array.from(piece);
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join("");
      const r = chars.slice(i).join("");
      const li = idOf.get(l);
      const ri = idOf.get(r);
      if (li !== undefined && ri !== undefined) found.push({ l, r, score: scores[id]!, li, ri });
    }
  }
  found.sort((a, b) => b.score - a.score || a.li - b.li || a.ri - b.ri);
  return found.map((m) => [m.l, m.r]);
}

function spmTokenizerJson(file: string, v: Vocab, get: MetaGetter): Record<string, unknown> {
  const scores = get("tokenizer.ggml.scores");
  if (!Array.isArray(scores) || scores.length !== v.tokens.length) {
    throw new GgufError(file, 'a "llama" vocabulary needs tokenizer.ggml.scores, one per token');
  }
  const prefix = get("tokenizer.ggml.add_space_prefix") !== false;
  const unkId = get("tokenizer.ggml.unknown_token_id");
  const unk = typeof unkId === "number" ? v.tokens[unkId] : v.tokens[v.types.indexOf(TYPE.unknown)];
  const replace = { type: "Replace", pattern: { String: " " }, content: SPACE_MARK };
  const decoders: unknown[] = [
    { type: "Replace", pattern: { String: SPACE_MARK }, content: " " },
    { type: "ByteFallback" },
    { type: "Fuse" },
  ];
  if (prefix) decoders.push({ type: "Strip", content: " ", start: 1, stop: 0 });
  return {
    version: "1.0",
    added_tokens: addedTokens(v),
    normalizer: {
      type: "Sequence",
      normalizers: prefix ? [{ type: "Prepend", prepend: SPACE_MARK }, replace] : [replace],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: "Sequence", decoders },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: unk ?? null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: vocabObject(v.tokens),
      merges: mergesFromScores(v, scores as number[]),
    },
  };
}

function bpeTokenizerJson(file: string, v: Vocab, get: MetaGetter): Record<string, unknown> {
  const pre = get("tokenizer.ggml.pre") ?? "default";
  const rule = typeof pre === "string" ? preTokenizerRule(pre) : undefined;
  if (rule === undefined) {
    throw new GgufError(
      file,
      `tokenizer.ggml.pre "${String(pre)}" is not supported (supported: ${preTokenizerNames().join(", ")})`,
    );
  }
  const merges = get("tokenizer.ggml.merges") ?? [];
  if (!Array.isArray(merges) || !merges.every((m) => typeof m === "string")) {
    throw new GgufError(file, 'metadata "tokenizer.ggml.merges" is not an array of strings');
  }
  const byteLevel = (useRegex: boolean) => ({
    type: "ByteLevel",
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: useRegex,
  });
  const splits = (rule.regexes ?? []).map((regex) => ({
    type: "Split",
    pattern: { Regex: regex },
    behavior: "Isolated",
    invert: false,
  }));
  return {
    version: "1.0",
    added_tokens: addedTokens(v),
    normalizer: rule.nfc ? { type: "NFC" } : null,
    pre_tokenizer:
      rule.regexes === null
        ? byteLevel(true)
        : { type: "Sequence", pretokenizers: [...splits, byteLevel(false)] },
    post_processor: null,
    decoder: byteLevel(true),
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: rule.ignoreMerges,
      vocab: vocabObject(v.tokens),
      merges: (merges as string[]).map((m) => {
        const at = m.indexOf(" ", 1);
        return [m.slice(0, at), m.slice(at + 1)];
      }),
    },
  };
}

/** The tokenizer config (special tokens, BOS/EOS behaviour, chat template) from the metadata. */
function tokenizerConfig(v: Vocab, get: MetaGetter, model: string): Record<string, unknown> {
  const cfg: Record<string, unknown> = {};
  const token = (key: string) => {
    const id = get(`tokenizer.ggml.${key}_token_id`);
    return typeof id === "number" ? v.tokens[id] : undefined;
  };
  for (const key of ["bos", "eos", "unk", "pad"]) {
    const t = token(key);
    if (t !== undefined) cfg[`${key}_token`] = t;
  }
  const addBos = get("tokenizer.ggml.add_bos_token");
  cfg.add_bos_token = typeof addBos === "boolean" ? addBos : model === "llama";
  const addEos = get("tokenizer.ggml.add_eos_token");
  cfg.add_eos_token = typeof addEos === "boolean" ? addEos : false;
  const template = get("tokenizer.chat_template");
  if (typeof template === "string") cfg.chat_template = template;
  return cfg;
}

/** Builds the tokenizer a GGUF file describes; errors name the file and the key at fault. */
export function ggufTokenizer(file: string, get: MetaGetter): Tokenizer {
  const model = get("tokenizer.ggml.model");
  if (model !== "llama" && model !== "gpt2") {
    throw new GgufError(
      file,
      `tokenizer.ggml.model ${JSON.stringify(model ?? null)} is not supported (supported: llama, gpt2)`,
    );
  }
  const v = readVocab(file, get);
  const json = model === "llama" ? spmTokenizerJson(file, v, get) : bpeTokenizerJson(file, v, get);
  const origin = `${file} (GGUF tokenizer)`;
  return createHfTokenizer(json, parseHfTokenizerConfig(tokenizerConfig(v, get, model), origin), origin);
}
