/**
 * llama.cpp's byte-level BPE pre-tokenizers, by the names GGUF files give them in
 * tokenizer.ggml.pre. A pre-tokenizer is a cascade of regular expressions: each splits every piece
 * the previous one left into its matches and the text between them (Hugging Face's Split with the
 * "Isolated" behaviour), and the last pieces are what BPE merges within. Many names share one rule
 * (a model family's converter picks a name per tokenizer it recognises by hash), so a name maps to
 * a rule here, and the rules are written as llama.cpp applies them, not as the original
 * tokenizer.json spelled them where the two differ.
 */

/** One rule: its regex cascade (null: GPT-2's own, as ByteLevel runs it) and BPE options. */
export interface PreTokenizerRule {
  readonly regexes: readonly string[] | null;
  /** A piece that is itself a token is taken whole, before any merge (llama.cpp's ignore_merges). */
  readonly ignoreMerges: boolean;
  /** The text is NFC-normalised first (as the family's Hugging Face tokenizer does). */
  readonly nfc: boolean;
}

// The English contractions, case-insensitive without an inline flag.
const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
// GPT-2's word rule.
const GPT2_WORDS = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
// Llama 3's rule: digits in runs of at most three, one leading non-letter joins a word.
const LLAMA3 = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
// Qwen2's: the same with every digit on its own.
const QWEN2 = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
// A run of letters that is not a-z (capitals, other scripts), then one that is not A-Z: words split
// at case changes (Mistral's Tekken and GPT-4o's o200k, as llama.cpp writes them without \p{Lu}).
const UPPER_THEN_LOWER = "((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+";
const UPPER_RUN = "((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*";
const TEKKEN = `[^\\r\\n\\p{L}\\p{N}]?${UPPER_THEN_LOWER}|[^\\r\\n\\p{L}\\p{N}]?${UPPER_RUN}|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const GPT4O = `[^\\r\\n\\p{L}\\p{N}]?${UPPER_THEN_LOWER}${CONTRACTIONS}?|[^\\r\\n\\p{L}\\p{N}]?${UPPER_RUN}${CONTRACTIONS}?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const SEED_CODER = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;

const rule = (regexes: readonly string[] | null, ignoreMerges = false, nfc = false): PreTokenizerRule => ({
  regexes,
  ignoreMerges,
  nfc,
});

const RULES = {
  // What llama.cpp runs for "default" or no name: punctuation runs first, then GPT-2's words, then
  // digit runs, then threes of ASCII digits.
  default: rule(["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_WORDS, "\\p{N}+", "[0-9][0-9][0-9]"]),
  gpt2: rule(null),
  llama3: rule([LLAMA3], true),
  llama3Merged: rule([LLAMA3]),
  qwen2: rule([QWEN2], false, true),
  qwen2Plain: rule([QWEN2]),
  digitsThenGpt2: rule(["\\p{N}", GPT2_WORDS]),
  tekken: rule([TEKKEN], true),
  gpt4o: rule([GPT4O]),
  seedCoder: rule([SEED_CODER]),
} as const;

/** Each name llama.cpp accepts for a rule written here (names of other rules are refused). */
const NAMES: Readonly<Record<string, keyof typeof RULES>> = {
  default: "default",
  "gpt-2": "gpt2",
  "phi-2": "gpt2",
  mpt: "gpt2",
  olmo: "gpt2",
  jais: "gpt2",
  trillion: "gpt2",
  exaone4: "gpt2",
  mellum: "gpt2",
  gigachat: "gpt2",
  "a.x-4.0": "gpt2",
  "granite-docling": "gpt2",
  llama3: "llama3",
  "llama-v3": "llama3",
  "llama-bpe": "llama3",
  falcon3: "llama3",
  "falcon-h1": "llama3",
  pixtral: "llama3",
  "midm-2.0": "llama3",
  lfm2: "llama3",
  dbrx: "llama3Merged",
  "smaug-bpe": "llama3Merged",
  glm4: "llama3Merged",
  "chatglm-bpe": "llama3Merged",
  qwen2: "qwen2",
  "deepseek-r1-qwen": "qwen2",
  megrez: "qwen2Plain",
  kormo: "qwen2Plain",
  stablelm2: "qwen2Plain",
  smollm: "digitsThenGpt2",
  starcoder: "digitsThenGpt2",
  refact: "digitsThenGpt2",
  "command-r": "digitsThenGpt2",
  codeshell: "digitsThenGpt2",
  exaone: "digitsThenGpt2",
  "minerva-7b": "digitsThenGpt2",
  mellum2: "digitsThenGpt2",
  tekken: "tekken",
  "gpt-4o": "gpt4o",
  llama4: "gpt4o",
  kanana2: "gpt4o",
  "seed-coder": "seedCoder",
};

/** The rule a tokenizer.ggml.pre name stands for, or undefined for a name not handled here. */
export function preTokenizerRule(name: string): PreTokenizerRule | undefined {
  return Object.hasOwn(NAMES, name) ? RULES[NAMES[name]!] : undefined;
}

/** Every name handled, for error messages and tests. */
export function preTokenizerNames(): string[] {
  return Object.keys(NAMES);
}
