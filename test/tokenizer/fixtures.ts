import { readFileSync } from "node:fs";
import { sharedDataPath } from "../../src/util/shared-data.js";

/** One llama.cpp tokenizer test vector: an input text and the ids llama.cpp expects (no BOS). */
export interface Vector {
  readonly text: string;
  readonly ids: readonly number[];
}

const SEPARATOR = "\n__ggml_vocab_test__\n";

/**
 * llama.cpp's test-tokenizer-0 vectors: NAME.inp holds texts each followed by the separator line,
 * NAME.out one line of space-separated ids per text (tokenized without special tokens).
 */
export function llamaCppVectors(name: string): Vector[] {
  const inpFile = sharedDataPath("tokenizers", "llamacpp-vocab", `${name}.inp`);
  const outFile = sharedDataPath("tokenizers", "llamacpp-vocab", `${name}.out`);
  const inp = readFileSync(inpFile, "utf8");
  if (!inp.endsWith(SEPARATOR)) throw new Error(`${inpFile}: expected to end with the separator line`);
  const texts = inp.slice(0, -SEPARATOR.length).split(SEPARATOR);
  const lines = readFileSync(outFile, "utf8").replace(/\n$/, "").split("\n");
  if (lines.length !== texts.length)
    throw new Error(`${name}: ${texts.length} inputs but ${lines.length} outputs`);
  return texts.map((text, i) => ({
    text,
    ids: lines[i]!.trim() === "" ? [] : lines[i]!.trim().split(/\s+/).map(Number),
  }));
}

export const tokenizerDir = (name: string): string => sharedDataPath("tokenizers", name);

/** Text that exercises multi-byte UTF-8, emoji ZWJ sequences, combining marks and scripts without spaces. */
export const MULTILINGUAL = [
  "Hello, world! Привет, мир! こんにちは世界 안녕하세요 مرحبا بالعالم",
  "🦙🚀 emoji: 😶‍🌫️ 👨‍👩‍👧‍👦 🏳️‍🌈 👍🏽 and flags 🇫🇷🇯🇵",
  "naïve café — «quotes» ‘single’ … ½ € ₿ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",
  "कान्हा गुजराती ગુજરાતી ភាសាខ្មែរ ไทย ภาษา ლ ᚠᛇᚻ",
  " leading space, two  spaces,\ttab,\nnewline\n\n and trailing  ",
  "我想在apple工作1314151天～ 中文标点：，。！？",
];
