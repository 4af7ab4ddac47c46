import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseHfConfig } from "../../src/model/hf-config.js";
import { randomWeights } from "../../src/model/random-weights.js";
import { writeSafetensors } from "../../src/model/safetensors-writer.js";
import type { DType } from "../../src/model/tensor.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { FAMILY_SPECS } from "../helpers/tiny-families.js";

/**
 * Tiny checkpoints of the families whose vocabularies are SentencePiece's, as Hugging Face
 * directories with such a tokenizer (stories260K's pieces and merges, byte fallback):
 *  - Gemma 2 / Gemma 3, laid out as Gemma's is (<pad> 0, <eos> 1, <bos> 2, <unk> 3, then the byte
 *    pieces <0x00>…<0xFF> and the merged ones, then the turn markers), no dummy-prefix space;
 *  - Phi-3, laid out as Phi-3's is (Llama 2's: <unk> 0, <s> 1, </s> 2, bytes, pieces, then
 *    <|endoftext|> and <|end|>), with the dummy prefix.
 * Both add their BOS in the post-processor.
 */
export const GEMMA_PAD = 0;
export const GEMMA_EOS = 1;
export const GEMMA_BOS = 2;
const SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"];
const TURN_MARKERS = ["<start_of_turn>", "<end_of_turn>"];

interface StoriesTokenizer {
  added_tokens: { id: number; content: string }[];
  model: { vocab: Record<string, number>; merges: [string, string][] };
}

function storiesTokenizer(): StoriesTokenizer {
  const file = sharedDataPath("models", "stories260K", "hf", "tokenizer.json");
  return JSON.parse(readFileSync(file, "utf8")) as StoriesTokenizer;
}

/** The Gemma-style tokenizer.json object and its vocabulary size. */
export function gemmaTokenizerJson(): { json: object; vocabSize: number } {
  const stories = storiesTokenizer();
  const vocab: Record<string, number> = {};
  SPECIALS.forEach((t, id) => {
    vocab[t] = id;
  });
  // stories260K: <unk> <s> </s> at 0–2, its byte and merged pieces from 3 on (shifted past Gemma's four).
  for (const [piece, id] of Object.entries(stories.model.vocab)) if (id >= 3) vocab[piece] = id + 1;
  let next = Math.max(...Object.values(vocab)) + 1;
  for (const t of TURN_MARKERS) vocab[t] = next++;
  const added = [...SPECIALS, ...TURN_MARKERS].map((content) => ({
    id: vocab[content],
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: "Replace", pattern: { String: " " }, content: "\u2581" },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<bos>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<bos>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<bos>", type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<bos>": { id: "<bos>", ids: [GEMMA_BOS], tokens: ["<bos>"] } },
    },
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "\u2581" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: stories.model.merges,
    },
  };
  return { json, vocabSize: next };
}

export type GemmaVariant = "gemma2" | "gemma3";

/**
 * Writes a tiny Gemma of the tiny-model family spec (tiny-families.ts) with `overrides` on its
 * config.json, the Gemma-style tokenizer, and seeded random weights in `dtype`.
 */
export function writeGemmaModel(
  dir: string,
  variant: GemmaVariant,
  overrides: Record<string, unknown> = {},
  dtype: DType = "f32",
): void {
  mkdirSync(dir, { recursive: true });
  const { json: tokenizer, vocabSize } = gemmaTokenizerJson();
  const spec = FAMILY_SPECS[variant];
  if (spec === undefined) throw new Error(`no tiny ${variant}`);
  const config = {
    ...spec.config,
    vocab_size: vocabSize,
    bos_token_id: GEMMA_BOS,
    eos_token_id: GEMMA_EOS,
    pad_token_id: GEMMA_PAD,
    torch_dtype: dtype === "f32" ? "float32" : dtype === "bf16" ? "bfloat16" : "float16",
    ...overrides,
  };
  const configFile = path.join(dir, "config.json");
  writeJson(configFile, config);
  const parsed = parseHfConfig(config, configFile);
  const weights = randomWeights(parsed, {
    dtype,
    seed: spec.seed,
    // Small: Gemma scales embeddings by √hidden and ties the output to them, so larger ones make
    // the residual stream (and the next token) mostly the current token's own embedding.
    embedStd: 0.4 / Math.sqrt(parsed.hiddenSize),
    normSpread: 0.1,
  });
  writeSafetensors(path.join(dir, "model.safetensors"), weights.values(), { format: "pt" });
  writeJson(path.join(dir, "generation_config.json"), {
    bos_token_id: GEMMA_BOS,
    eos_token_id: GEMMA_EOS,
    pad_token_id: GEMMA_PAD,
  });
  writeJson(path.join(dir, "tokenizer.json"), tokenizer);
  writeJson(path.join(dir, "tokenizer_config.json"), {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: "<bos>",
    eos_token: "<eos>",
    pad_token: "<pad>",
    unk_token: "<unk>",
  });
}

function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

export const PHI3_BOS = 1;
export const PHI3_EOS = 2;

/**
 * A tiny Phi-3 (the tiny-model family spec with `overrides`) with a Phi-3-style tokenizer:
 * stories260K's Llama 2-style one (dummy prefix, <s> added) plus <|endoftext|> and <|end|>.
 */
export function writePhi3Model(dir: string, overrides: Record<string, unknown> = {}): void {
  mkdirSync(dir, { recursive: true });
  const tokenizer = storiesTokenizer() as StoriesTokenizer & Record<string, unknown>;
  let next = Math.max(...Object.values(tokenizer.model.vocab)) + 1;
  for (const content of ["<|endoftext|>", "<|end|>"]) {
    const id = next++;
    tokenizer.model.vocab[content] = id;
    tokenizer.added_tokens.push({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    } as { id: number; content: string });
  }
  const spec = FAMILY_SPECS.phi3;
  const config = {
    ...spec.config,
    vocab_size: next,
    bos_token_id: PHI3_BOS,
    eos_token_id: PHI3_EOS,
    pad_token_id: next - 2,
    torch_dtype: "float32",
    ...overrides,
  };
  const configFile = path.join(dir, "config.json");
  writeJson(configFile, config);
  const weights = randomWeights(parseHfConfig(config, configFile), {
    dtype: "f32",
    seed: spec.seed,
    embedStd: 0.5,
  });
  writeSafetensors(path.join(dir, "model.safetensors"), weights.values(), { format: "pt" });
  writeJson(path.join(dir, "generation_config.json"), { bos_token_id: PHI3_BOS, eos_token_id: PHI3_EOS });
  writeJson(path.join(dir, "tokenizer.json"), tokenizer);
  writeJson(path.join(dir, "tokenizer_config.json"), {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: "<s>",
    eos_token: "</s>",
    unk_token: "<unk>",
  });
}
