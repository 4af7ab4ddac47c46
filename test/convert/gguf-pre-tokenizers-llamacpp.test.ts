import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { extractVocab, vocabMetadata } from "../../src/convert/gguf-vocab.js";
import { gguf, writeGguf } from "../../src/convert/gguf-writer.js";
import { loadGgufTokenizer } from "../../src/model/gguf-loader.js";
import type { LoadedModel } from "../../src/model/types.js";
import { loadHfTokenizer } from "../../src/tokenizer/index.js";
import { sharedDataPath } from "../../src/util/shared-data.js";
import { MULTILINGUAL, tokenizerDir } from "../tokenizer/fixtures.js";
import { llamaCppFixture } from "./llama-cpp.js";

// Each pre-tokenizer rule through one of the names llama.cpp gives it: the same byte-level vocabulary
// and merges (Llama 3's), written as GGUF with that tokenizer.ggml.pre, must split and merge every
// text as llama.cpp does. Llama 3's merges join digits, punctuation, spaces and letter runs, so a
// piece cut where llama.cpp does not cut changes the ids.
const RULE_NAMES = [
  "default",
  "gpt-2",
  "llama-bpe",
  "dbrx", // Llama 3's split with merges always applied
  "qwen2",
  "stablelm2", // Qwen2's split without NFC
  "smollm",
  "tekken",
  "gpt-4o",
  "seed-coder",
];

const llamaCpp = llamaCppFixture("lamina-gguf-pre-");
const SEPARATOR = "\n__ggml_vocab_test__\n";

/** llama.cpp's own tokenizer test texts, then scripts, emoji and whitespace runs. */
function texts(): string[] {
  const inp = readFileSync(
    sharedDataPath("tokenizers", "llamacpp-vocab", "ggml-vocab-llama-bpe.gguf.inp"),
    "utf8",
  );
  return [
    ...inp.slice(0, -SEPARATOR.length).split(SEPARATOR),
    ...MULTILINGUAL,
    "it's 12345 dogs; HTTPServer's CamelCase 'LL x//y <=> a^b|c ~d $5+6",
  ];
}

describe("GGUF byte-level pre-tokenizers against llama.cpp", () => {
  it(`every rule (${RULE_NAMES.join(", ")}) tokenizes as llama.cpp does`, async () => {
    const dir = tokenizerDir("tokenizer-llama3");
    const hf = await loadHfTokenizer(dir);
    const model = {
      config: { vocabSize: hf.vocabSize, bosTokenId: hf.bosTokenId, eosTokenIds: hf.eosTokenIds },
      tokenizer: hf,
      source: { kind: "hf", path: dir, label: "tokenizer-llama3" },
    } as unknown as LoadedModel;
    const vocab = extractVocab(model);
    // llama.cpp reads the architecture's hyperparameters even for the vocabulary alone (and logs a
    // missing token_embd.weight for a file without tensors before it loads the vocabulary anyway).
    const hparams = Object.entries({
      context_length: 256,
      embedding_length: 64,
      block_count: 1,
      feed_forward_length: 128,
      "attention.head_count": 2,
      "attention.head_count_kv": 2,
    }).map(([k, v]) => ({ key: `llama.${k}`, value: gguf.u32(v) }));
    const cases = texts();
    const differing = new Set<string>();
    for (const pre of RULE_NAMES) {
      const file = path.join(llamaCpp.tmp, `${pre}.gguf`);
      writeGguf(
        file,
        [
          { key: "general.architecture", value: gguf.str("llama") },
          ...hparams,
          { key: "llama.attention.layer_norm_rms_epsilon", value: gguf.f32(1e-5) },
          ...vocabMetadata(model, { ...vocab, pre }),
        ],
        [],
      );
      const ours = loadGgufTokenizer(file);
      const theirs = await llamaCpp.loadModel(file, { vocabOnly: true });
      try {
        for (const text of cases) {
          const want = [...theirs.tokenize(text)];
          assert.deepEqual(
            ours.encode(text, { addSpecialTokens: false }),
            want,
            `${pre}: ${JSON.stringify(text)}`,
          );
          if (
            pre !== "llama-bpe" &&
            JSON.stringify(want) !== JSON.stringify(hf.encode(text, { addSpecialTokens: false }))
          )
            differing.add(pre);
        }
      } finally {
        await theirs.dispose();
      }
    }
    // The texts tell the rules apart: each but llama-bpe's twin splits some text unlike Llama 3's own.
    assert.deepEqual(
      RULE_NAMES.filter((n) => n !== "llama-bpe" && !differing.has(n)),
      [],
      "rules whose tokens never differed from Llama 3's own",
    );
  });
});
