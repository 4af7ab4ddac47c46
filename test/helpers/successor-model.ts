import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { expectedTensors } from "../../src/model/expected-tensors.js";
import { parseHfConfig } from "../../src/model/hf-config.js";
import { writeSafetensors } from "../../src/model/safetensors-writer.js";
import { byteLevelTokenizerJson, TINY_BOS, TINY_EOS } from "./tiny-models.js";

/**
 * A real model built to answer predictably, for tests of what the server makes of a reply: each
 * token's embedding is its own axis and every layer adds nothing, so greedy decoding follows a
 * successor table written into the LM head (`next`: [from, to, weight]; the highest weight wins).
 * Its tokenizer is the tiny byte-level one with `added` tokens from id 258 on and `template` as
 * its chat template. The LM head sees each one-hot embedding normed to √hidden ≈ 16.5, so weights
 * 1 apart are 16.5 apart in the logits.
 */
export interface SuccessorModel {
  readonly added: readonly { readonly content: string; readonly special: boolean }[];
  readonly template: string;
  readonly next: readonly (readonly [number, number, number])[];
  readonly eos: readonly number[];
}

const HIDDEN = 272;

export function writeSuccessorTokenizer(
  dir: string,
  m: Pick<SuccessorModel, "added" | "template" | "eos">,
): void {
  mkdirSync(dir, { recursive: true });
  const json = byteLevelTokenizerJson() as { added_tokens: unknown[] };
  json.added_tokens.push(
    ...m.added.map((t, i) => ({
      id: 258 + i,
      content: t.content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: t.special,
    })),
  );
  writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(json));
  writeFileSync(
    path.join(dir, "tokenizer_config.json"),
    JSON.stringify({
      tokenizer_class: "PreTrainedTokenizerFast",
      bos_token: "<s>",
      eos_token: "</s>",
      add_bos_token: false,
      chat_template: m.template,
    }),
  );
}

export function writeSuccessorModel(dir: string, m: SuccessorModel): void {
  const vocab = 258 + m.added.length;
  const configJson = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: vocab,
    hidden_size: HIDDEN,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 4,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    tie_word_embeddings: false,
    hidden_act: "silu",
    bos_token_id: TINY_BOS,
    eos_token_id: m.eos[0] ?? TINY_EOS,
    torch_dtype: "float32",
  };
  writeSuccessorTokenizer(dir, m);
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(configJson));
  writeFileSync(
    path.join(dir, "generation_config.json"),
    JSON.stringify({ eos_token_id: [...m.eos, TINY_EOS] }),
  );
  const config = parseHfConfig(configJson, "config.json");
  const tensors = expectedTensors(config).map(({ name, shape }) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith("norm.weight")) data.fill(1);
    if (name === "model.embed_tokens.weight") for (let t = 0; t < vocab; t++) data[t * HIDDEN + t] = 1;
    if (name === "lm_head.weight") for (const [from, to, w] of m.next) data[to * HIDDEN + from] = w;
    return { name, dtype: "f32" as const, shape, data };
  });
  writeSafetensors(path.join(dir, "model.safetensors"), tensors, { format: "pt" });
}
