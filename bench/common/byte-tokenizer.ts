// The tokenizer every random-weight benchmark model carries: byte-level BPE over the 256 bytes
// (GPT-2's printable-character mapping) plus <s> and </s>, no merges. Benchmarks feed token ids
// directly; the tokenizer only has to load (in our engine and, through GGUF, in llama.cpp).
import { writeFileSync } from "node:fs";
import path from "node:path";

export const BYTE_BOS = 256;
export const BYTE_EOS = 257;
/** Vocabulary size of a model using this tokenizer. */
export const BYTE_VOCAB = 258;

export function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value)}\n`);
}

/**
 * tokenizer.json; with `prependBos`, a post-processor that puts <s> before every encoded text
 * (what llama.cpp reads as add_bos when the GGUF is exported).
 */
export function byteTokenizerJson(prependBos = false): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    vocab[String.fromCodePoint(printable ? b : 256 + shifted++)] = b;
  }
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  const bos = { SpecialToken: { id: "<s>", type_id: 0 } };
  const text = { Sequence: { id: "A", type_id: 0 } };
  return {
    version: "1.0",
    added_tokens: [special(BYTE_BOS, "<s>"), special(BYTE_EOS, "</s>")],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: prependBos
      ? {
          type: "TemplateProcessing",
          single: [bos, text],
          pair: [bos, text],
          special_tokens: { "<s>": { id: "<s>", ids: [BYTE_BOS], tokens: ["<s>"] } },
        }
      : null,
    decoder: byteLevel,
    model: { type: "BPE", dropout: null, unk_token: null, byte_fallback: false, vocab, merges: [] },
  };
}

/** Writes tokenizer.json, tokenizer_config.json and generation_config.json into a model directory. */
export function writeByteTokenizer(dir: string, prependBos = false): void {
  writeJson(path.join(dir, "generation_config.json"), { bos_token_id: BYTE_BOS, eos_token_id: BYTE_EOS });
  writeJson(path.join(dir, "tokenizer.json"), byteTokenizerJson(prependBos));
  writeJson(path.join(dir, "tokenizer_config.json"), {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: "<s>",
    eos_token: "</s>",
    add_bos_token: true,
  });
}
