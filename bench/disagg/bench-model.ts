import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseHfConfig } from "../../src/model/hf-config.js";
import { randomWeights } from "../../src/model/random-weights.js";
import { writeSafetensors } from "../../src/model/safetensors-writer.js";
import type { DType } from "../../src/model/tensor.js";

/** Shape of a random-weight Llama written for the disaggregation benchmarks. */
export interface BenchShape {
  readonly hidden: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly intermediate: number;
  readonly maxPositions: number;
  readonly dtype: DType;
}

const BOS = 256;
const EOS = 257;
const TORCH: Record<DType, string> = { f32: "float32", f16: "float16", bf16: "bfloat16" };

/**
 * Writes (once per shape, under `root`) a Hugging Face directory with seeded random weights and
 * a byte-level tokenizer: timing depends on the shape, not on the values.
 */
export function ensureBenchModel(root: string, s: BenchShape): string {
  const name = `disagg-h${s.hidden}-l${s.layers}-a${s.heads}-kv${s.kvHeads}-i${s.intermediate}-p${s.maxPositions}-${s.dtype}`;
  const dir = path.join(root, name);
  if (existsSync(path.join(dir, "config.json"))) return dir;
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const configJson = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: s.hidden,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    intermediate_size: s.intermediate,
    max_position_embeddings: s.maxPositions,
    vocab_size: 258,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    rope_scaling: null,
    tie_word_embeddings: false,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: BOS,
    eos_token_id: EOS,
    torch_dtype: TORCH[s.dtype],
  };
  const configFile = path.join(partial, "config.json");
  const config = parseHfConfig(configJson, configFile);
  const weights = randomWeights(config, { dtype: s.dtype, seed: 4242, embedStd: 0.5, normSpread: 0.1 });
  writeSafetensors(path.join(partial, "model.safetensors"), weights.values(), { format: "pt" });
  writeJson(path.join(partial, "generation_config.json"), { bos_token_id: BOS, eos_token_id: EOS });
  writeJson(path.join(partial, "tokenizer.json"), byteTokenizer());
  writeJson(path.join(partial, "tokenizer_config.json"), {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: "<s>",
    eos_token: "</s>",
    add_bos_token: true,
  });
  writeJson(configFile, configJson);
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  return dir;
}

/** Prompt ids: BOS, then bytes that differ per sequence. */
export function benchPrompt(length: number, salt: number): number[] {
  const ids = [BOS];
  for (let i = 1; i < length; i++) ids.push((i * 131 + salt * 977) % 256);
  return ids;
}

function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value)}\n`);
}

/** Byte-level BPE: the 256 bytes in GPT-2's printable mapping, then <s> and </s>; no merges. */
function byteTokenizer(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    vocab[String.fromCodePoint(printable ? b : 256 + extra++)] = b;
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
  return {
    version: "1.0",
    added_tokens: [special(BOS, "<s>"), special(EOS, "</s>")],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: { type: "BPE", dropout: null, unk_token: null, byte_fallback: false, vocab, merges: [] },
  };
}
